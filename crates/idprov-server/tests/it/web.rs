//! The web page's server side: the first-start token, sessions and their
//! cookie, passwords, CSRF and cross-site refusals, security headers, and
//! the endpoints the page uses. (The page itself is driven in Chromium by
//! `tests/web/run.mjs`.)

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use idprov_testkit::{TestDevice, TestServer, capture_logs, captured_logs, provision};
use reqwest::StatusCode;

use crate::common::add_secret;

fn token(server: &TestServer) -> String {
    std::fs::read_to_string(server.data_dir().join("signin-token"))
        .expect("the first start wrote a token")
        .trim()
        .to_owned()
}

struct Signed {
    cookie: String,
    csrf: String,
}

async fn signin(server: &TestServer, body: serde_json::Value) -> reqwest::Response {
    server
        .http()
        .post(server.url("/admin/api/signin"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("sign-in request")
}

async fn signed_in(server: &TestServer, body: serde_json::Value) -> Signed {
    let r = signin(server, body).await;
    assert_eq!(r.status(), StatusCode::OK);
    let set_cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().expect("pair").to_owned();
    let doc: serde_json::Value = r.json().await.expect("JSON");
    Signed {
        cookie,
        csrf: doc["csrf"].as_str().expect("csrf").to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_token_signs_in_once_and_never_reaches_the_logs() {
    capture_logs();
    let server = TestServer::start().await;
    let path = server.data_dir().join("signin-token");
    assert_eq!(
        std::fs::metadata(&path)
            .expect("token file")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let value = token(&server);
    assert!(value.len() >= 40, "a strong token");
    let wrong = signin(&server, serde_json::json!({ "token": "not-the-token" })).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let s = signed_in(&server, serde_json::json!({ "token": value })).await;
    assert!(!path.exists(), "used: its file is gone");
    let again = signin(&server, serde_json::json!({ "token": value })).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "one use only");
    let me: serde_json::Value = server
        .http()
        .get(server.url("/admin/api/session"))
        .header("cookie", &s.cookie)
        .send()
        .await
        .expect("session")
        .json()
        .await
        .expect("JSON");
    assert_eq!(me["name"], "admin");
    assert_eq!(me["via"], "session");
    assert!(
        !captured_logs().contains(&value),
        "the token is never logged"
    );
    assert!(
        captured_logs().contains("signin-token"),
        "the log says where it is"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_need_csrf_for_changes_and_expire() {
    let server = TestServer::start().await;
    let s = signed_in(&server, serde_json::json!({ "token": token(&server) })).await;
    let http = server.http();
    // Reading with the session works; a change without its CSRF token does not.
    let r = http
        .get(server.url("/idprov/admin/devices"))
        .header("cookie", &s.cookie)
        .send()
        .await
        .expect("list");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body =
        serde_json::json!({"deviceID":"web-1","oobSecret":"a-secret-for-web-1","validUntil":""})
            .to_string();
    let r = http
        .post(server.url("/idprov/oobsecret"))
        .header("cookie", &s.cookie)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let r = http
        .post(server.url("/idprov/oobsecret"))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    // The page's automatic refreshes do not keep it alive: half an hour
    // after the last request of a person, it ends.
    for minute in [8, 16, 24, 32] {
        server.clock.advance(Duration::from_secs(8 * 60));
        let r = http
            .get(server.url("/idprov/admin/summary"))
            .header("cookie", &s.cookie)
            .header("x-background-refresh", "1")
            .send()
            .await
            .expect("refresh");
        let want = if minute < 30 {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(r.status(), want, "a refresh at minute {minute}");
    }
    let r = http
        .get(server.url("/admin/api/session"))
        .header("cookie", &s.cookie)
        .send()
        .await
        .expect("session");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .get(server.url("/idprov/admin/devices"))
        .header("cookie", &s.cookie)
        .send()
        .await
        .expect("list");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_sign_in_and_failures_are_rate_limited() {
    let server = TestServer::start().await;
    let s = signed_in(&server, serde_json::json!({ "token": token(&server) })).await;
    let set = |password: &'static str| {
        let (http, url, cookie, csrf) = (
            server.http(),
            server.url("/admin/api/password"),
            s.cookie.clone(),
            s.csrf.clone(),
        );
        async move {
            http.post(url)
                .header("cookie", cookie)
                .header("x-csrf-token", csrf)
                .header("content-type", "application/json")
                .body(serde_json::json!({ "password": password }).to_string())
                .send()
                .await
                .expect("password")
                .status()
        }
    };
    assert_eq!(set("short").await, StatusCode::BAD_REQUEST);
    assert_eq!(
        set("correct horse battery staple").await,
        StatusCode::NO_CONTENT
    );
    let r = server
        .http()
        .post(server.url("/admin/api/signout"))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .send()
        .await
        .expect("sign out");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = server
        .http()
        .get(server.url("/admin/api/session"))
        .header("cookie", &s.cookie)
        .send()
        .await
        .expect("session");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "signed out");
    signed_in(
        &server,
        serde_json::json!({ "name": "admin", "password": "correct horse battery staple" }),
    )
    .await;
    // Wrong passwords, then the limiter: 10 attempts in a burst, then 429.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            signin(
                &server,
                serde_json::json!({ "name": "admin", "password": "wrong wrong wrong" }),
            )
            .await
            .status(),
        );
    }
    assert!(statuses.contains(&StatusCode::UNAUTHORIZED));
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let events: Vec<String> = server
        .registry()
        .audit_entries(0, 1000)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.event)
        .collect();
    for e in ["web_signin", "web_signin_failed", "web_password_set"] {
        assert!(events.iter().any(|x| x == e), "{e}: {events:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_requests_are_refused_even_with_a_certificate() {
    let server = TestServer::start().await;
    let admin = server.http_with(
        &std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("cert"),
        &std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key"),
    );
    let body = serde_json::json!({"deviceID":"x-1","oobSecret":"a-secret-for-x-1","validUntil":""})
        .to_string();
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "null"),
    ] {
        let r = admin
            .post(server.url("/idprov/oobsecret"))
            .header(header, value)
            .body(body.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{header}: {value}");
        assert!(r.headers().get("access-control-allow-origin").is_none());
    }
    // The same origin, and no browser headers at all (the CLI, devices), pass.
    let r = admin
        .post(server.url("/idprov/oobsecret"))
        .header("origin", format!("https://{}", server.addr))
        .header("sec-fetch-site", "same-origin")
        .body(body.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    // A certificate-authenticated browser is signed in as that person.
    let me: serde_json::Value = admin
        .get(server.url("/admin/api/session"))
        .send()
        .await
        .expect("session")
        .json()
        .await
        .expect("JSON");
    assert_eq!(me["via"], "certificate");
    assert_eq!(me["name"], "admin");
}

#[tokio::test]
async fn the_page_is_embedded_with_a_strict_content_security_policy() {
    let server = TestServer::start().await;
    let http = server.http();
    let r = http.get(server.url("/admin/")).send().await.expect("page");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000",
        "HTTPS only, remembered by the browser"
    );
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let html = r.text().await.expect("html");
    assert!(!html.contains("<script>"), "no inline script");
    // No inline event handler attribute (` onclick=`, ` onload=`, …).
    let handler = html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name_len = rest.chars().take_while(char::is_ascii_lowercase).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    });
    assert!(!handler, "no inline event handler");
    assert!(!html.contains("style=\""), "no inline style");
    for (asset, mime) in [
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
        ("jsqr.js", "text/javascript"),
    ] {
        let r = http
            .get(server.url(&format!("/admin/assets/{asset}")))
            .send()
            .await
            .expect("asset");
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .expect("ASCII")
                .starts_with(mime)
        );
    }
    let r = http
        .get(server.url("/admin/assets/../Cargo.toml"))
        .send()
        .await
        .expect("asset");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_audit_status_and_label_sheets() {
    let server = TestServer::start().await;
    add_secret(&server, "lab-1", "old-secret-of-lab-1").await;
    provision(
        &server.http(),
        &server,
        &TestDevice::new("lab-2").request(None),
    )
    .await;
    let admin = server.http_with(
        &std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("cert"),
        &std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key"),
    );
    let summary: serde_json::Value = admin
        .get(server.url("/idprov/admin/summary"))
        .send()
        .await
        .expect("summary")
        .json()
        .await
        .expect("JSON");
    assert_eq!(summary["devices"]["total"], 2, "{summary}");
    assert_eq!(summary["waitingRequests"], 1);
    assert!(
        summary["recentAudit"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    let status: serde_json::Value = admin
        .get(server.url("/idprov/admin/audit/status"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("JSON");
    assert_eq!(status["verified"], true, "{status}");

    let r = admin
        .post(server.url("/idprov/admin/labels"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "deviceIDs": ["lab-1", "lab-3"], "format": "svg" }).to_string())
        .send()
        .await
        .expect("labels");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    let svg = r.text().await.expect("svg");
    assert!(svg.contains("lab-1") && svg.contains("lab-3"));
    // The old secret of lab-1 was replaced.
    let device = TestDevice::new("lab-1");
    let (_, resp, _) = provision(
        &server.http(),
        &server,
        &device.request(Some("old-secret-of-lab-1")),
    )
    .await;
    assert_eq!(
        resp.expect("answer").status,
        idprov_proto::ProvisionStatus::Rejected
    );
    let r = admin
        .post(server.url("/idprov/admin/labels"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "deviceIDs": ["../etc"] }).to_string())
        .send()
        .await
        .expect("labels");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// Whether a session cookie still signs in.
async fn session_status(server: &TestServer, s: &Signed) -> StatusCode {
    server
        .http()
        .get(server.url("/admin/api/session"))
        .header("cookie", &s.cookie)
        .send()
        .await
        .expect("session")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_administrator_or_changing_a_password_ends_sessions() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let key = rcgen::KeyPair::generate().expect("key");
    admin
        .issue_credential(&idprov_proto::admin::CredentialRequest {
            ou: "admin".into(),
            cn: "alice".into(),
            public_key_pem: key.public_key_pem(),
            sans: Vec::new(),
            validity_days: None,
        })
        .await
        .expect("alice's certificate");
    admin
        .set_web_password("alice", "alice first password")
        .await
        .expect("password");
    let alice = |pw: &str| serde_json::json!({ "name": "alice", "password": pw });
    let s1 = signed_in(&server, alice("alice first password")).await;
    let s2 = signed_in(&server, alice("alice first password")).await;
    assert_eq!(session_status(&server, &s1).await, StatusCode::OK);
    assert_eq!(session_status(&server, &s2).await, StatusCode::OK);

    // Alice changes her password in the page: her other session ends,
    // the one she changed it from stays.
    let r = server
        .http()
        .post(server.url("/admin/api/password"))
        .header("cookie", &s1.cookie)
        .header("x-csrf-token", &s1.csrf)
        .header("content-type", "application/json")
        .body(serde_json::json!({ "password": "alice second password" }).to_string())
        .send()
        .await
        .expect("password");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(session_status(&server, &s1).await, StatusCode::OK);
    assert_eq!(
        session_status(&server, &s2).await,
        StatusCode::UNAUTHORIZED,
        "the other session ended"
    );
    // An administrator sets it from the CLI: every session of alice ends.
    admin
        .set_web_password("alice", "alice third password")
        .await
        .expect("password");
    assert_eq!(session_status(&server, &s1).await, StatusCode::UNAUTHORIZED);

    // Revocation ends everything at once: the open session, the password,
    // and what the session could do.
    let s3 = signed_in(&server, alice("alice third password")).await;
    assert_eq!(session_status(&server, &s3).await, StatusCode::OK);
    admin
        .revoke_credential(
            "admin",
            "alice",
            &idprov_proto::admin::RevokeRequest::default(),
        )
        .await
        .expect("revoked");
    assert_eq!(session_status(&server, &s3).await, StatusCode::UNAUTHORIZED);
    let r = server
        .http()
        .post(server.url("/idprov/oobsecret"))
        .header("cookie", &s3.cookie)
        .header("x-csrf-token", &s3.csrf)
        .header("content-type", "application/json")
        .body(r#"{"deviceID":"planted","oobSecret":"a-secret-of-hers","validUntil":""}"#)
        .send()
        .await
        .expect("oob");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no secret registered");
    assert!(
        server
            .registry()
            .live_secret("planted", idprov_proto::clock::unix_now(&*server.clock))
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        signin(&server, alice("alice third password"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "the password no longer signs in"
    );
    assert!(
        server
            .registry()
            .web_password("alice")
            .await
            .expect("read")
            .is_none()
    );

    // `idprov admin password bob --remove`.
    admin
        .set_web_password("bob", "bob's own password")
        .await
        .expect("password");
    let b = signed_in(
        &server,
        serde_json::json!({ "name": "bob", "password": "bob's own password" }),
    )
    .await;
    admin.remove_web_password("bob").await.expect("removed");
    assert_eq!(session_status(&server, &b).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        signin(
            &server,
            serde_json::json!({ "name": "bob", "password": "bob's own password" })
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
    let again = admin.remove_web_password("bob").await.unwrap_err();
    assert!(again.to_string().contains("no web password"), "{again}");
    let events: Vec<String> = server
        .registry()
        .audit_entries(0, 1000)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "web_password_removed")
            .count(),
        2,
        "{events:?}"
    );
}
