// idprov admin page: The shared modal dialog (never the browser's confirm()).

import { $ } from './dom.js';

/**
 * A modal dialog (never the browser's confirm()). Resolves true when the
 * user presses OK, false on Cancel or Escape. Inputs in `body` stay readable
 * by the caller afterwards.
 */
export function ask({ title, body = [], ok = 'OK', danger = false }) {
  const dialog = $('#modal');
  $('#modal-title').textContent = title;
  $('#modal-body').replaceChildren(...body.flat().filter(Boolean));
  const okButton = $('#modal-ok');
  okButton.textContent = ok;
  okButton.className = danger ? 'danger' : 'primary';
  dialog.returnValue = '';
  return new Promise((resolve) => {
    const cancel = $('#modal-cancel');
    const onCancel = () => dialog.close('cancel');
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('close', () => {
      cancel.removeEventListener('click', onCancel);
      resolve(dialog.returnValue === 'ok');
    }, { once: true });
    dialog.showModal();
    const firstInput = $('#modal-body input, #modal-body select, #modal-body textarea');
    (firstInput || okButton).focus();
  });
}
