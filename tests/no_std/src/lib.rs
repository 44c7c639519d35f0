//! Firmware-style use of the protocol crate with no operating system: build
//! a request, sign it, encode it, verify a response. The allocator is a
//! bump allocator over a static buffer, as small firmware would have.

#![no_std]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use idprov_proto::{ProvisionRequest, ProvisionResponse};

const HEAP: usize = 64 * 1024;

struct Bump {
    heap: UnsafeCell<[u8; HEAP]>,
    next: AtomicUsize,
}

// SAFETY: allocation hands out disjoint ranges, advanced atomically.
unsafe impl Sync for Bump {}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut start = 0;
        let claimed = self.next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |next| {
            start = (next + layout.align() - 1) & !(layout.align() - 1);
            let end = start.checked_add(layout.size())?;
            (end <= HEAP).then_some(end)
        });
        match claimed {
            // SAFETY: `start..start + size` lies inside the heap and was never handed out.
            Ok(_) => unsafe { (self.heap.get() as *mut u8).add(start) },
            Err(_) => core::ptr::null_mut(),
        }
    }
    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Bump = Bump {
    heap: UnsafeCell::new([0; HEAP]),
    next: AtomicUsize::new(0),
};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// Signs a request for `device_id` with `secret` and writes its JSON into
/// `out`; returns the length, or 0 if `out` is too small.
#[unsafe(no_mangle)]
pub extern "C" fn idprov_sign_request(out: *mut u8, out_len: usize) -> usize {
    let mut req = ProvisionRequest {
        device_id: "device1".into(),
        ip: "192.0.2.1".into(),
        mac: "".into(),
        public_key_pem: "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n".into(),
        signature: "".into(),
    };
    req.sign(b"secret1");
    let json = req.to_json();
    if json.len() > out_len || out.is_null() {
        return 0;
    }
    // SAFETY: the caller passes a writable buffer of `out_len` bytes.
    unsafe { core::ptr::copy_nonoverlapping(json.as_ptr(), out, json.len()) };
    json.len()
}

/// Verifies a response body under `secret`; 1 when the signature verifies.
#[unsafe(no_mangle)]
pub extern "C" fn idprov_verify_response(body: *const u8, len: usize) -> i32 {
    if body.is_null() {
        return 0;
    }
    // SAFETY: the caller passes a readable buffer of `len` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(body, len) };
    match ProvisionResponse::from_json(bytes) {
        Ok(resp) => i32::from(resp.verify(b"secret1").is_some()),
        Err(_) => 0,
    }
}

/// idprov v2 on firmware: stretches the secret with the parameters the
/// server sent (`params`, its JSON), starts a run bound to the connection's
/// exporter value (32 bytes) with 64 random bytes from the hardware
/// generator (`seed`), and writes the `/idprov/v2/start` body into `out`;
/// the rest of a run (the check of `confirmV`, the signed finish message,
/// the answer's check) is linked too.
/// Returns its length, or 0.
#[unsafe(no_mangle)]
pub extern "C" fn idprov_v2_start(
    params: *const u8,
    params_len: usize,
    exporter: *const u8,
    seed: *const u8,
    out: *mut u8,
    out_len: usize,
) -> usize {
    use idprov_proto::v2;
    if params.is_null() || exporter.is_null() || seed.is_null() || out.is_null() {
        return 0;
    }
    // SAFETY: the caller passes readable buffers of the stated lengths.
    let (params, exporter, seed) = unsafe {
        (
            core::slice::from_raw_parts(params, params_len),
            &*(exporter as *const [u8; 32]),
            *(seed as *const [u8; 64]),
        )
    };
    let Ok(kdf) = v2::ParamsResponse::from_json(params) else {
        return 0;
    };
    let Ok(secret) = v2::derive(b"493817", "device1", &kdf) else {
        return 0;
    };
    let ca = idprov_proto::Fingerprint::from_bytes([7; 32]);
    let binding = v2::Binding::new("device1", &ca, exporter);
    let (prover, share_p) = v2::prover_start(&secret, &binding, &mut v2::SeededRng::new(seed));
    // The run goes on with the server's answer: `prover.finish(shareV,
    // confirmV)` checks confirmV and gives confirmP and the run's keys,
    // which sign the provisioning request and check the answer.
    if let Ok((confirm_p, keys)) = prover.finish(&[0; 65], &[0; 32]) {
        let request = ProvisionRequest {
            device_id: "device1".into(),
            ip: "<nil>".into(),
            ..ProvisionRequest::default()
        };
        let _ = v2::FinishRequest::new(request, &confirm_p, &keys).to_json();
        if let Ok(answer) = ProvisionResponse::from_json(b"{}") {
            let _ = answer.verify_v2(&keys);
        }
    }
    let json = v2::StartRequest::new("device1", &share_p).to_json();
    if json.len() > out_len {
        return 0;
    }
    // SAFETY: the caller passes a writable buffer of `out_len` bytes.
    unsafe { core::ptr::copy_nonoverlapping(json.as_ptr(), out, json.len()) };
    json.len()
}
