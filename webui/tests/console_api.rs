//! The console API in-process (actix test service over the real stores): every endpoint tried
//! by every role, sessions, CSRF, forced password change, lockout, field validation, domain
//! scope, and the quarantine actions with their audit trail.

use std::sync::Arc;

use actix_web::http::{Method, StatusCode};
use actix_web::{App, test, web};
use serde_json::{Value, json};

use jianmen_mta::audit::AuditLog;
use jianmen_mta::config::Config;
use jianmen_mta::hunt::HuntIndex;
use jianmen_mta::quarantine::links::{LinkAction, LinkKey};
use jianmen_mta::quarantine::{Held, Quarantine};
use jianmen_mta::queue::spool::Spool;
use jianmen_mta::queue::{MessageKind, MessageState, NewMessage, QueueStore, SqliteStore};
use jianmen_mta::relay::Relay;
use jianmen_mta::risk::{RiskConfig, Watch};
use jianmen_mta::tracking::Tracker;
use jianmen_mta::upgrade::release::Releases;
use jianmen_webui::Console;
use jianmen_webui::accounts::{Accounts, Role};

const HELD: &str = "01HELDHELDHELDHELDHELDHELD";

const MESSAGE: &[u8] = b"From: Bank <notice@bank.test>\r\nTo: staff@example.com\r\n\
    Subject: Verify now\r\nContent-Type: text/html\r\n\r\n\
    <p onclick=\"steal()\">Hello</p><script>alert(1)</script>\
    <img src=\"http://tracker.test/p.gif\"><a href=\"javascript:alert(2)\">x</a>\
    <a href=\"http://evil.test/login\">https://bank.test/</a>\r\n";

struct Env {
    _dir: tempfile::TempDir,
    console: Arc<Console>,
    store: Arc<SqliteStore>,
    watch: Arc<Watch>,
    hunt: HuntIndex,
    passwords: Vec<(String, Role, String)>,
}

async fn env() -> Env {
    env_with("").await
}

/// An environment whose configuration ends with `extra`.
async fn env_with(extra: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nhostname = \"gw.test\"\ndata_dir = \"{}\"\n[domains]\nprotected = [\"example.com\", \"other.test\"]\n[console]\n{extra}",
        dir.path().display()
    );
    let mut config = Config::parse(&text).unwrap();
    // Kept in a file, as a loaded configuration is (a backup takes it).
    let file = dir.path().join("jianmen.toml");
    std::fs::write(&file, &text).unwrap();
    config.file = Some(file);
    let store = Arc::new(SqliteStore::open(&config.database_path()).await.unwrap());
    let spool = Spool::configured(&config).unwrap();
    hold(
        &config,
        &store,
        HELD,
        &["staff@example.com", "boss@example.com"],
        "phish: 12 ≥ 6",
    )
    .await;
    let accounts = Accounts::open(dir.path(), config.console.clone().unwrap())
        .await
        .unwrap();
    let passwords = accounts.create_initial(1000).await.unwrap();
    let audit = Arc::new(AuditLog::open(&dir.path().join("audit.db")).await.unwrap());
    let watch = Watch::open(RiskConfig::default(), store.clone())
        .await
        .unwrap();
    let hunt = HuntIndex::open(dir.path(), &["example.com".into()])
        .await
        .unwrap();
    // Two delivery channels and a reserve (nothing is sent through them here).
    let channels = Config::parse(&format!(
        "[server]\nhostname = \"gw.test\"\ndata_dir = \"{}\"\n[domains]\nprotected = [\"example.com\"]\n\
         [relay]\ndnsbl = [{{ zone = \"bl.test\" }}]\n\
         [[relay.channel]]\nname = \"cn-1\"\nsource = \"127.0.0.2\"\n\
         [[relay.channel]]\nname = \"overseas\"\nsource = \"127.0.0.3\"\n\
         [[relay.channel]]\nname = \"spare\"\nsource = \"127.0.0.4\"\nreserve = true\n",
        dir.path().display()
    ))
    .unwrap();
    let relay = Relay::open(
        channels.relay,
        Some(store.clone()),
        Arc::new(jianmen_mta::metrics::Metrics::default()),
    )
    .await
    .unwrap();
    let policy = jianmen_mta::policy::PolicyBook::open(
        store.clone(),
        config.scan_policy(),
        config.domains.protected.clone(),
        None,
    )
    .await
    .unwrap();
    let console = Arc::new(
        Console::new(
            Arc::new(config),
            accounts,
            Quarantine::new(store.clone(), spool),
            Tracker::open(dir.path()).await.unwrap(),
            audit,
            store.clone(),
            LinkKey::load_or_create(dir.path()).unwrap(),
        )
        .with_releases(Releases::new(dir.path().join("releases")))
        .watching(Some(watch.clone()))
        .relaying(Some(relay))
        .recalling(Some(hunt.clone()), None)
        .editing_policy(Some(policy))
        .serving_tls(Arc::new(
            jianmen_gm::tls::ServerTls::new(&jianmen_gm::tls::TlsConfig::generated(), "gw.test")
                .unwrap(),
        )),
    );
    Env {
        _dir: dir,
        console,
        store,
        watch,
        hunt,
        passwords,
    }
}

/// Spools [`MESSAGE`] as `id` and holds it in quarantine for `rcpts` with `reason`.
async fn hold(config: &Config, store: &SqliteStore, id: &str, rcpts: &[&str], reason: &str) {
    Spool::configured(config)
        .unwrap()
        .write(id, &[MESSAGE])
        .unwrap();
    store
        .insert(&[NewMessage {
            id: id.into(),
            mail_from: "notice@bank.test".into(),
            rcpts: rcpts.iter().map(|r| r.to_string()).collect(),
            size: MESSAGE.len() as u64,
            received_at: 1000,
            client_ip: "192.0.2.9".into(),
            helo: "bank.test".into(),
            smtputf8: false,
            kind: MessageKind::Mail,
            held: Some(Box::new(Held::new(
                MESSAGE,
                reason.into(),
                None,
                None,
                &config.quarantine.retention_days,
                1000,
            ))),
        }])
        .await
        .unwrap();
}

/// A signed-in client: cookie and CSRF token.
#[derive(Clone, Debug)]
struct Who {
    cookie: String,
    csrf: String,
}

macro_rules! app {
    ($env:expr) => {
        test::init_service(
            App::new()
                .app_data(web::Data::from($env.console.clone()))
                .wrap(jianmen_webui::security_headers())
                .configure(jianmen_webui::configure),
        )
        .await
    };
}

/// Each `(key, value, field)` set in `policy` and saved on version `base` is refused, naming
/// `field`.
async fn refused_policies(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    who: &Who,
    base: i64,
    policy: &Value,
    cases: Vec<(&str, Value, &str)>,
) {
    for (key, value, field) in cases {
        let mut wrong = policy.clone();
        wrong[key] = value;
        let body = json!({"base": base, "comment": "a wrong value", "policy": wrong});
        let (s, b, _, _) = call(app, Some(who), Method::PUT, "/api/policy", Some(body)).await;
        assert_eq!(
            (s, b["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{b}"
        );
    }
}

async fn call(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    who: Option<&Who>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (
    StatusCode,
    Value,
    actix_web::http::header::HeaderMap,
    String,
) {
    let mut req = test::TestRequest::default()
        .method(method)
        .uri(path)
        .peer_addr("127.0.0.1:40000".parse().unwrap());
    if let Some(w) = who {
        req = req
            .insert_header(("Cookie", format!("__Host-jianmen={}", w.cookie)))
            .insert_header(("X-CSRF-Token", w.csrf.clone()));
    }
    if let Some(b) = body {
        req = req.set_json(b);
    }
    let resp = test::call_service(app, req.to_request()).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = test::read_body(resp).await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
        text,
    )
}

/// Signs in as `env`'s initial account of `role` and changes its first password to
/// [`NEW_PASSWORD`], as every administrator must before anything else.
async fn ready(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    env: &Env,
    role: Role,
) -> (Who, String) {
    let (name, _, password) = env.passwords.iter().find(|p| p.1 == role).unwrap();
    let (w, _) = sign_in(app, name, password).await.unwrap();
    call(
        app,
        Some(&w),
        Method::POST,
        "/api/password",
        Some(json!({"current_password": password, "new_password": NEW_PASSWORD})),
    )
    .await;
    (w, name.clone())
}

/// Has the security administrator `w` make `name`, a per-domain administrator of
/// other.test, and signs it in with its first password changed.
async fn other_domain_admin(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    w: &Who,
    name: &str,
) -> Who {
    let (s, created, _, _) = call(
        app,
        Some(w),
        Method::POST,
        "/api/accounts",
        Some(json!({"name": name, "role": "security", "domain": "other.test"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let initial = created["initial_password"].as_str().unwrap();
    let (dw, _) = sign_in(app, name, initial).await.unwrap();
    call(
        app,
        Some(&dw),
        Method::POST,
        "/api/password",
        Some(json!({"current_password": initial, "new_password": NEW_PASSWORD})),
    )
    .await;
    dw
}

async fn sign_in(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    name: &str,
    password: &str,
) -> Result<(Who, Value), (StatusCode, Value)> {
    let req = test::TestRequest::post()
        .uri("/api/login")
        .peer_addr("127.0.0.1:40000".parse().unwrap())
        .set_json(json!({"username": name, "password": password}))
        .to_request();
    let resp = test::call_service(app, req).await;
    let status = resp.status();
    let cookie = resp
        .response()
        .cookies()
        .find(|c| c.name() == "__Host-jianmen")
        .map(|c| {
            assert!(c.secure() == Some(true) && c.http_only() == Some(true));
            c.value().to_owned()
        });
    let body: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap_or(Value::Null);
    match (status, cookie) {
        (StatusCode::OK, Some(cookie)) => Ok((
            Who {
                cookie,
                csrf: body["csrf"].as_str().unwrap().to_owned(),
            },
            body,
        )),
        _ => Err((status, body)),
    }
}

const NEW_PASSWORD: &str = "Gate-Keeper-2026!";

#[actix_web::test]
async fn every_role_boundary_holds() {
    let env = env().await;
    let app = app!(env);
    let mut who = std::collections::HashMap::new();
    for (name, role, password) in &env.passwords {
        let (w, body) = sign_in(&app, name, password).await.unwrap();
        assert_eq!(body["account"]["must_change"], true);
        // Pages show times in the gateway's one zone.
        assert_eq!(body["time_zone"], "Asia/Shanghai", "{body}");
        // Until the password is changed, nothing but the password page works.
        let (s, _, _, _) = call(&app, Some(&w), Method::GET, "/api/quarantine", None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, body, _, _) = call(
            &app,
            Some(&w),
            Method::POST,
            "/api/password",
            Some(json!({"current_password": password, "new_password": "weak"})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(body["field"], "new_password");
        let (s, _, _, _) = call(
            &app,
            Some(&w),
            Method::POST,
            "/api/password",
            Some(json!({"current_password": password, "new_password": NEW_PASSWORD})),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        who.insert(*role, w);
    }
    let missing = "01MISSINGMISSINGMISSING000";
    // (method, path, body, roles allowed). Allowed calls use absent targets where they would
    // change something, so a 404 proves the role check passed.
    let matrix: Vec<(Method, String, Option<Value>, &[Role])> = vec![
        (
            Method::GET,
            "/api/dashboard".into(),
            None,
            &[Role::Security, Role::System],
        ),
        (
            Method::GET,
            "/api/quarantine".into(),
            None,
            &[Role::Security],
        ),
        (
            Method::GET,
            format!("/api/quarantine/{HELD}"),
            None,
            &[Role::Security],
        ),
        (
            Method::GET,
            format!("/api/quarantine/{HELD}/raw"),
            None,
            &[Role::Security],
        ),
        (
            Method::GET,
            format!("/api/quarantine/{HELD}/preview"),
            None,
            &[Role::Security],
        ),
        (
            Method::GET,
            format!("/api/quarantine/{HELD}/anatomy"),
            None,
            &[Role::Security],
        ),
        (
            Method::POST,
            format!("/api/quarantine/{missing}/release"),
            Some(json!({})),
            &[Role::Security],
        ),
        (
            Method::POST,
            format!("/api/quarantine/{missing}/delete"),
            None,
            &[Role::Security],
        ),
        (Method::GET, "/api/tracking".into(), None, &[Role::Security]),
        (
            Method::POST,
            "/api/totp/begin".into(),
            None,
            &[Role::System, Role::Security, Role::Audit],
        ),
        (
            Method::GET,
            "/api/tracking/messages".into(),
            None,
            &[Role::Security],
        ),
        (
            Method::GET,
            format!("/api/tracking/messages/{missing}"),
            None,
            &[Role::Security],
        ),
        (Method::GET, "/api/policy".into(), None, &[Role::Security]),
        (
            Method::PUT,
            "/api/policy".into(),
            Some(json!({"bogus": 0})),
            &[Role::Security],
        ),
        (
            Method::GET,
            "/api/policy/versions".into(),
            None,
            &[Role::Security],
        ),
        (
            Method::GET,
            "/api/own-lists".into(),
            None,
            &[Role::Security],
        ),
        (
            Method::GET,
            "/api/own-lists/dora@example.com".into(),
            None,
            &[Role::Security],
        ),
        (
            Method::POST,
            "/api/own-lists/dora@example.com".into(),
            Some(json!({"list": "allow", "entries": []})),
            &[Role::Security],
        ),
        (
            Method::DELETE,
            "/api/own-lists/dora@example.com?list=allow&entry=x.test".into(),
            None,
            &[Role::Security],
        ),
        (
            Method::GET,
            "/api/policy/versions/1".into(),
            None,
            &[Role::Security],
        ),
        (
            Method::POST,
            "/api/policy/versions/99/restore".into(),
            None,
            &[Role::Security],
        ),
        (Method::GET, "/api/system".into(), None, &[Role::System]),
        (
            Method::GET,
            "/api/system/upgrade".into(),
            None,
            &[Role::System],
        ),
        (
            Method::POST,
            "/api/system/upgrade".into(),
            None,
            &[Role::System],
        ),
        (
            Method::GET,
            "/api/system/settings".into(),
            None,
            &[Role::System],
        ),
        (
            Method::PUT,
            "/api/system/settings".into(),
            Some(json!({"bogus": 0})),
            &[Role::System],
        ),
        (
            Method::DELETE,
            "/api/system/settings".into(),
            None,
            &[Role::System],
        ),
        (
            Method::POST,
            "/api/system/backup".into(),
            Some(json!({"passphrase": "a long enough passphrase"})),
            &[Role::System],
        ),
        (
            Method::GET,
            "/api/accounts".into(),
            None,
            &[Role::System, Role::Security],
        ),
        (
            Method::POST,
            "/api/accounts".into(),
            Some(json!({"name": "x", "role": "system"})),
            &[Role::System],
        ),
        (
            Method::POST,
            "/api/accounts/nobody/reset".into(),
            None,
            &[Role::System, Role::Security],
        ),
        (
            Method::POST,
            "/api/accounts/nobody/unlock".into(),
            None,
            &[Role::System, Role::Security],
        ),
        (
            Method::POST,
            "/api/accounts/nobody/delete".into(),
            None,
            &[Role::System, Role::Security],
        ),
        (Method::GET, "/api/risk".into(), None, &[Role::Security]),
        (
            Method::GET,
            "/api/risk/nobody@example.com".into(),
            None,
            &[Role::Security],
        ),
        (
            Method::POST,
            "/api/risk/nobody@example.com/clear".into(),
            None,
            &[Role::Security],
        ),
        (
            Method::POST,
            "/api/risk/nobody@example.com/confirm".into(),
            None,
            &[Role::Security],
        ),
        (
            Method::GET,
            "/api/hunt?sender=a@b.test".into(),
            None,
            &[Role::Security],
        ),
        (Method::GET, "/api/recall".into(), None, &[Role::Security]),
        (
            Method::POST,
            "/api/recall".into(),
            Some(json!({"queue_id": HELD})),
            &[Role::Security],
        ),
        (
            Method::GET,
            format!("/api/recall/{HELD}"),
            None,
            &[Role::Security],
        ),
        (
            Method::POST,
            format!("/api/recall/{HELD}/undo"),
            None,
            &[Role::Security],
        ),
        (Method::GET, "/api/intel".into(), None, &[Role::Security]),
        (Method::GET, "/api/links".into(), None, &[Role::Security]),
        (Method::GET, "/api/drills".into(), None, &[Role::Security]),
        (
            Method::GET,
            "/api/drills/templates".into(),
            None,
            &[Role::Security],
        ),
        (
            Method::POST,
            format!("/api/drills/{HELD}/pause"),
            None,
            &[Role::Security],
        ),
        (
            Method::GET,
            "/api/intel/indicators?q=x".into(),
            None,
            &[Role::Security],
        ),
        (
            Method::GET,
            "/api/intel/hits".into(),
            None,
            &[Role::Security],
        ),
        (
            Method::POST,
            "/api/intel/hits/1/recall".into(),
            None,
            &[Role::Security],
        ),
        (
            Method::POST,
            "/api/intel/import".into(),
            Some(json!({"objects": []})),
            &[Role::Security],
        ),
        (Method::GET, "/api/channels".into(), None, &[Role::System]),
        (
            Method::POST,
            "/api/channels/nothing/drain".into(),
            None,
            &[Role::System],
        ),
        (
            Method::POST,
            "/api/channels/nothing/activate".into(),
            None,
            &[Role::System],
        ),
        (
            Method::POST,
            "/api/certificates/international/request".into(),
            None,
            &[Role::System],
        ),
        (
            Method::DELETE,
            "/api/certificates/international".into(),
            None,
            &[Role::System],
        ),
        (Method::GET, "/api/audit".into(), None, &[Role::Audit]),
        (
            Method::GET,
            "/api/audit/verify".into(),
            None,
            &[Role::Audit],
        ),
    ];
    for (method, path, body, allowed) in &matrix {
        let (s, _, _, _) = call(&app, None, method.clone(), path, body.clone()).await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a session"
        );
        for role in [Role::System, Role::Security, Role::Audit] {
            let (s, b, _, _) =
                call(&app, Some(&who[&role]), method.clone(), path, body.clone()).await;
            if allowed.contains(&role) {
                assert!(
                    s.is_success()
                        || s == StatusCode::NOT_FOUND
                        || (s == StatusCode::BAD_REQUEST
                            && (b["field"] == "name" || b["field"] == "body")),
                    "{role:?} may {method} {path}: {s} {b}"
                );
            } else {
                assert_eq!(
                    s,
                    StatusCode::FORBIDDEN,
                    "{role:?} must not {method} {path}: {b}"
                );
            }
        }
        if *method == Method::POST {
            let mut forged = who[&allowed[0]].clone();
            forged.csrf = "forged".into();
            let (s, b, _, _) = call(&app, Some(&forged), method.clone(), path, body.clone()).await;
            assert_eq!(
                s,
                StatusCode::FORBIDDEN,
                "{method} {path} with a wrong CSRF token: {b}"
            );
        }
    }

    // The specification lists exactly the routes the server has.
    let spec: Value = serde_json::from_str(include_str!("../pages/openapi.json")).unwrap();
    let paths: std::collections::BTreeSet<String> =
        spec["paths"].as_object().unwrap().keys().cloned().collect();
    let routes = |source: &'static str| {
        let start = source.find("fn routes(").unwrap();
        &source[start..start + source[start..].find("\n}\n").unwrap()]
    };
    let body = [
        routes(include_str!("../src/api.rs")),
        routes(include_str!("../src/upgrade.rs")),
        routes(include_str!("../src/risk.rs")),
        routes(include_str!("../src/relay.rs")),
        routes(include_str!("../src/recall.rs")),
        routes(include_str!("../src/intel.rs")),
        routes(include_str!("../src/clicks.rs")),
        routes(include_str!("../src/drills.rs")),
        routes(include_str!("../src/policy.rs")),
        routes(include_str!("../src/ownlists.rs")),
        routes(include_str!("../src/totp.rs")),
        routes(include_str!("../src/certificates.rs")),
        routes(include_str!("../src/backup.rs")),
        routes(include_str!("../src/settings.rs")),
    ]
    .concat();
    let routed: std::collections::BTreeSet<String> = body
        .split("\"/api/")
        .skip(1)
        .map(|s| format!("/api/{}", s.split('"').next().unwrap()))
        .chain(["/api/openapi.json".to_owned()])
        .collect();
    assert_eq!(paths, routed);
}

#[actix_web::test]
async fn quarantine_actions_are_safe_validated_and_audited() {
    // Global allow and block entries, which a domain administrator must not read.
    let env =
        env_with("[scan]\nallow = [\"friend@elsewhere.test\"]\nblock = [\"@spam.test\"]\n").await;
    let app = app!(env);
    let (w, _) = ready(&app, &env, Role::Security).await;

    // A score floor and an order narrow and sort the list.
    for (query, total) in [
        ("min_score=0&sort=score", 1),
        ("min_score=0.5", 0),
        ("sort=expiry", 1),
    ] {
        let (s, page, _, _) = call(
            &app,
            Some(&w),
            Method::GET,
            &format!("/api/quarantine?{query}"),
            None,
        )
        .await;
        assert_eq!(
            (s, page["total"].as_i64()),
            (StatusCode::OK, Some(total)),
            "{query}: {page}"
        );
    }

    // Pages carry a strict CSP and refuse framing.
    let (s, _, h, html) = call(&app, None, Method::GET, "/", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("/app.js"));
    let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(h.get("x-frame-options").unwrap(), "DENY");

    // Search and its validation.
    let (s, page, _, _) = call(
        &app,
        Some(&w),
        Method::GET,
        "/api/quarantine?subject=verify",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["total"], 1);
    assert_eq!(
        page["items"][0]["rcpts"],
        "boss@example.com,staff@example.com"
    );
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("offset=-1", "offset"),
        ("class=ham", "class"),
        ("min_score=abc", "min_score"),
        ("min_score=NaN", "min_score"),
        ("sort=worst", "sort"),
        ("colour=red", "colour"),
        ("since=yesterday", "since"),
    ] {
        let (s, b, _, _) = call(
            &app,
            Some(&w),
            Method::GET,
            &format!("/api/quarantine?{query}"),
            None,
        )
        .await;
        assert_eq!(
            (s, b["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{query}: {b}"
        );
    }
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::GET,
        "/api/quarantine?subject=%27%20OR%201%3D1%20--",
        None,
    )
    .await;
    assert_eq!((s, b["total"].as_i64()), (StatusCode::OK, Some(0)));
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::GET,
        "/api/quarantine/..%2Fetc%2Fpasswd",
        None,
    )
    .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("id")),
        "{b}"
    );
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::POST,
        &format!("/api/quarantine/{HELD}/release"),
        Some(json!({"everyone": true})),
    )
    .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("body")),
        "{b}"
    );

    // The preview is sanitised and sandboxed.
    let (s, _, h, html) = call(
        &app,
        Some(&w),
        Method::GET,
        &format!("/api/quarantine/{HELD}/preview"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Hello"));
    for bad in [
        "<script",
        "onclick",
        "javascript:",
        "tracker.test",
        "evil.test",
    ] {
        assert!(!html.contains(bad), "{bad} survived: {html}");
    }
    assert!(
        html.contains("https://bank.test/"),
        "the link's text stays: {html}"
    );
    // Its anatomy: the header fields and where each link really goes.
    let (s, a, _, _) = call(
        &app,
        Some(&w),
        Method::GET,
        &format!("/api/quarantine/{HELD}/anatomy"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert!(
        a["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "subject" && h[1] == "Verify now"),
        "{a}"
    );
    assert!(
        a["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["text"] == "https://bank.test/" && l["href"] == "http://evil.test/login"),
        "{a}"
    );
    let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(
        csp.contains("sandbox") && csp.contains("default-src 'none'"),
        "{csp}"
    );

    // Release one recipient, then the rest; the queue row becomes deliverable once.
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::POST,
        &format!("/api/quarantine/{HELD}/release"),
        Some(json!({"rcpts": ["staff@example.com"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let copy = b["queue_id"].as_str().unwrap().to_owned();
    assert_ne!(copy, HELD);
    assert_eq!(
        env.store.get(&copy).await.unwrap().unwrap().state,
        MessageState::Active
    );
    assert_eq!(
        env.store.get(HELD).await.unwrap().unwrap().state,
        MessageState::Held
    );
    let (s, _, _, _) = call(
        &app,
        Some(&w),
        Method::POST,
        &format!("/api/quarantine/{HELD}/release"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        env.store.get(HELD).await.unwrap().unwrap().state,
        MessageState::Active
    );
    let (s, _, _, _) = call(
        &app,
        Some(&w),
        Method::POST,
        &format!("/api/quarantine/{HELD}/release"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "a second release is refused");
    let (s, detail, _, _) = call(
        &app,
        Some(&w),
        Method::GET,
        &format!("/api/quarantine/{HELD}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(detail["item"]["status"], "released");
    env.console.tracker.flush().await;

    // A per-domain administrator of another domain sees nothing of example.com. The security
    // administrator makes it; the system administrator may not (finding 7 of the hardening
    // review: no console role creates accounts that see mail or check the others).
    let (sys, _, sys_pw) = env.passwords.iter().find(|p| p.1 == Role::System).unwrap();
    let (sw, _) = sign_in(&app, sys, sys_pw).await.unwrap();
    call(
        &app,
        Some(&sw),
        Method::POST,
        "/api/password",
        Some(json!({"current_password": sys_pw, "new_password": NEW_PASSWORD})),
    )
    .await;
    for body in [
        json!({"name": "otheradmin", "role": "security", "domain": "other.test"}),
        json!({"name": "sec2", "role": "security"}),
        json!({"name": "audit2", "role": "audit"}),
    ] {
        let (s, b, _, _) = call(&app, Some(&sw), Method::POST, "/api/accounts", Some(body)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    }
    for target in ["secadmin", "auditor"] {
        for what in ["reset", "unlock", "delete"] {
            let (s, b, _, _) = call(
                &app,
                Some(&sw),
                Method::POST,
                &format!("/api/accounts/{target}/{what}"),
                None,
            )
            .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "sysadmin {what} {target}: {b}");
        }
    }
    let (s, b, _, _) = call(
        &app,
        Some(&sw),
        Method::POST,
        "/api/accounts",
        Some(json!({"name": "sysadmin2", "role": "system"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, created, _, _) = call(
        &app,
        Some(&w),
        Method::POST,
        "/api/accounts",
        Some(json!({"name": "otheradmin", "role": "security", "domain": "other.test"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let (s, b, _, _) = call(&app, Some(&w), Method::GET, "/api/accounts", None).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = b
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["otheradmin"],
        "a security administrator sees its delegates only"
    );
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::POST,
        "/api/accounts",
        Some(json!({"name": "Bad Name!", "role": "security", "domain": "other.test"})),
    )
    .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("name"))
    );
    let initial = created["initial_password"].as_str().unwrap();
    let (dw, _) = sign_in(&app, "otheradmin", initial).await.unwrap();
    call(
        &app,
        Some(&dw),
        Method::POST,
        "/api/password",
        Some(json!({"current_password": initial, "new_password": NEW_PASSWORD})),
    )
    .await;
    let (s, b, _, _) = call(
        &app,
        Some(&dw),
        Method::GET,
        "/api/quarantine?status=all",
        None,
    )
    .await;
    assert_eq!((s, b["total"].as_i64()), (StatusCode::OK, Some(0)));
    let (s, _, _, _) = call(
        &app,
        Some(&dw),
        Method::GET,
        &format!("/api/quarantine/{HELD}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b, _, _) = call(&app, Some(&dw), Method::GET, "/api/tracking", None).await;
    assert_eq!((s, b["total"].as_i64()), (StatusCode::OK, Some(0)), "{b}");
    // Sending accounts are the whole organisation's.
    let (s, _, _, _) = call(&app, Some(&dw), Method::GET, "/api/risk", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A domain administrator's "not spam" stays with its domain: `jianmen retrain` learns only
    // from the gateway-wide feedback (finding 8 of the hardening review).
    const OTHER: &str = "01OTHEROTHEROTHEROTHEROTHE";
    hold(
        &env.console.config,
        &env.store,
        OTHER,
        &["staff@other.test"],
        "spam: 7 ≥ 6",
    )
    .await;
    let (s, b, _, _) = call(
        &app,
        Some(&dw),
        Method::POST,
        &format!("/api/quarantine/{OTHER}/release"),
        Some(json!({"not_spam": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let feedback = env.console.config.server.data_dir.join("feedback");
    let files = |dir: std::path::PathBuf| std::fs::read_dir(dir).map_or(0, |d| d.count());
    assert_eq!(files(feedback.join("domains/other.test/ham")), 1);
    assert_eq!(
        files(feedback.join("ham")),
        0,
        "nothing in the gateway-wide feedback"
    );

    // Finding 8 of the hardening review: a domain administrator read the global policy.
    let (s, b, _, _) = call(&app, Some(&dw), Method::GET, "/api/policy", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["protected_domains"], json!(["other.test"]), "{b}");
    assert!(b["policy"].is_null(), "no global policy: {b}");
    assert_eq!(b["domain_policy"]["domain"], "other.test", "{b}");
    assert!(
        !b.to_string().contains("spam.test") && !b.to_string().contains("friend@"),
        "no global allow or block entries: {b}"
    );

    // Five wrong passwords lock the account, even against the right one; the failures are audited.
    for _ in 0..5 {
        assert!(
            sign_in(&app, "otheradmin", "Wrong-Password-1")
                .await
                .is_err()
        );
    }
    // Answered like a wrong password (names and locks are not revealed); the audit log says why.
    let (s, b) = sign_in(&app, "otheradmin", NEW_PASSWORD).await.unwrap_err();
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(
        b["code"], "credentials",
        "the pages word it from their catalogue: {b}"
    );
    let (s, unknown) = sign_in(&app, "no-such-admin", NEW_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b, unknown, "a locked account answers like an unknown one");
    let recent = env.console.audit.recent(20).await.unwrap();
    assert!(
        recent
            .iter()
            .any(|e| e.action == "login.fail" && e.detail.contains("locked")),
        "the lock is audited"
    );

    // The trail: releases, preview, account creation, failed logins — and the chain verifies.
    let entries = env.console.audit.recent(200).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    for a in [
        "quarantine.release",
        "quarantine.preview",
        "account.create",
        "login.fail",
        "login.ok",
        "password.change",
    ] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
    assert!(env.console.audit.verify().await.is_ok());
    let (auditor, _, apw) = env.passwords.iter().find(|p| p.1 == Role::Audit).unwrap();
    let (aw, _) = sign_in(&app, auditor, apw).await.unwrap();
    call(
        &app,
        Some(&aw),
        Method::POST,
        "/api/password",
        Some(json!({"current_password": apw, "new_password": NEW_PASSWORD})),
    )
    .await;
    let (s, v, _, _) = call(&app, Some(&aw), Method::GET, "/api/audit/verify", None).await;
    assert_eq!(
        (s, v["intact"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
}

#[actix_web::test]
async fn the_risk_board_explains_and_decides_contained_accounts() {
    let env = env().await;
    let app = app!(env);
    let (w, name) = ready(&app, &env, Role::Security).await;
    // A new account mails 200 strangers in half an hour, all within the last whole hour so the
    // burst is not split across two hourly buckets.
    let now = (chrono::Utc::now().timestamp() / 3600 - 1) * 3600 + 60;
    for i in 0..200 {
        let rcpts = [format!("v{i}@outside.test")];
        env.watch
            .observe(
                "zhang@example.com",
                &jianmen_scan::behaviour::Sent {
                    at: now + i * 9,
                    client: Some("203.0.113.7".parse().unwrap()),
                    rcpts: &rcpts,
                    flagged: false,
                },
            )
            .await;
    }
    // What it sent since it was held waits for the decision.
    let id = "01RISKRISKRISKRISKRISKRISK";
    hold(
        &env.console.config,
        &env.store,
        id,
        &["v1@outside.test"],
        "account",
    )
    .await;
    env.watch.note_hold(id, "zhang@example.com").await.unwrap();
    let (s, b, _, _) = call(&app, Some(&w), Method::GET, "/api/risk", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let first = &b["accounts"][0];
    assert_eq!(first["account"], "zhang@example.com");
    assert_eq!(first["level"], "held");
    let why = first["reasons"].to_string();
    assert!(
        why.contains("\"kind\":\"new_recipients\"") && why.contains("\"kind\":\"volume\""),
        "{why}"
    );
    assert_eq!(first["volume"].as_array().unwrap().len(), 24);
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::GET,
        "/api/risk/ZHANG@example.com",
        None,
    )
    .await;
    assert_eq!((s, b["held"].as_u64()), (StatusCode::OK, Some(1)), "{b}");
    let levels: Vec<&str> = b["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["held", "throttled", "alert"]);
    let bad = "/api/risk/%0Abad/clear";
    let (s, b, _, _) = call(&app, Some(&w), Method::POST, bad, None).await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("account"))
    );

    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::POST,
        "/api/risk/zhang@example.com/clear",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["released"][0]["queue_id"], id);
    assert_eq!(
        env.store.get(id).await.unwrap().unwrap().state,
        MessageState::Active,
        "the held mail goes out"
    );
    let (_, b, _, _) = call(
        &app,
        Some(&w),
        Method::GET,
        "/api/risk/zhang@example.com",
        None,
    )
    .await;
    assert_eq!(b["account"]["level"], "normal");
    assert!(
        b["events"][0]["actor"]
            .as_str()
            .unwrap()
            .contains(name.as_str())
    );
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::POST,
        "/api/risk/zhang@example.com/confirm",
        None,
    )
    .await;
    assert_eq!(
        (s, b["level"].as_str()),
        (StatusCode::OK, Some("blocked")),
        "{b}"
    );
    let actions: Vec<String> = env
        .console
        .audit
        .recent(20)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {}", e.action, e.detail))
        .collect();
    assert!(
        actions
            .iter()
            .any(|a| a == "risk.clear zhang@example.com: false alarm, 1 held released"),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("risk.confirm zhang@example.com"))
    );
}

/// A self-service form post (`t=<link>`), as a recipient's browser sends it: no cookie, no
/// CSRF header. Returns the status and page.
async fn post_link(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    link: &str,
) -> (StatusCode, String) {
    let req = test::TestRequest::post()
        .uri("/u/release")
        .peer_addr("198.51.100.7:40000".parse().unwrap())
        .set_form([("t", link)])
        .to_request();
    let resp = test::call_service(app, req).await;
    let status = resp.status();
    (
        status,
        String::from_utf8_lossy(&test::read_body(resp).await).into_owned(),
    )
}

/// A self-service page fetched as a recipient's browser does (no cookie): status and page.
async fn get_page(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    path: &str,
) -> (StatusCode, String, actix_web::http::header::HeaderMap) {
    let (status, _, headers, page) = call(app, None, Method::GET, path, None).await;
    (status, page, headers)
}

fn released(item: &jianmen_mta::quarantine::Item, rcpt: &str) -> bool {
    item.rcpts
        .iter()
        .any(|r| r.rcpt == rcpt && r.released_at.is_some())
}

#[actix_web::test]
async fn self_service_links_release_once_and_refuse_the_rest() {
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    // By default only spam is released by recipients; the held item is of another class.
    let env = env().await;
    let app = app!(env);
    let key = LinkKey::load_or_create(env._dir.path()).unwrap();
    let link = key.issue(
        LinkAction::Release,
        HELD,
        "staff@example.com",
        unix() + 3600,
    );
    let (s, html, _) = get_page(&app, &format!("/u/release?t={link}")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{html}");
    assert_eq!(post_link(&app, &link).await.0, StatusCode::FORBIDDEN);

    let env = env_with("[quarantine]\nuser_release = [\"refused\"]\n").await;
    let app = app!(env);
    let q = &env.console.quarantine;
    let key = LinkKey::load_or_create(env._dir.path()).unwrap();
    let exp = unix() + 3600;
    let link = key.issue(LinkAction::Release, HELD, "staff@example.com", exp);

    // Opening the link shows the message and changes nothing (scanners fetch links).
    let (s, html, h) = get_page(&app, &format!("/u/release?t={link}")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("Verify now") && html.contains("method=\"post\""));
    assert!(!html.contains("<script"));
    assert_eq!(h.get("cache-control").unwrap(), "no-store");
    assert!(!released(&q.get(HELD).await.unwrap(), "staff@example.com"));

    // Refused: altered, expired, for another action, for a recipient without a copy.
    let mut tampered = link.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(post_link(&app, &tampered).await.0, StatusCode::BAD_REQUEST);
    let expired = key.issue(LinkAction::Release, HELD, "staff@example.com", unix() - 1);
    assert_eq!(post_link(&app, &expired).await.0, StatusCode::GONE);
    let portal = key.issue(LinkAction::Portal, "", "boss@example.com", exp);
    assert_eq!(post_link(&app, &portal).await.0, StatusCode::BAD_REQUEST);
    let (s, _, _) = get_page(&app, &format!("/u/portal?t={link}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let stranger = key.issue(LinkAction::Release, HELD, "eve@example.com", exp);
    assert_eq!(post_link(&app, &stranger).await.0, StatusCode::FORBIDDEN);
    let (s, _, _) = get_page(&app, "/u/release?t=").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(!released(&q.get(HELD).await.unwrap(), "staff@example.com"));

    // The real post releases this recipient's copy only, once, and is audited.
    let (s, html) = post_link(&app, &link).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let item = q.get(HELD).await.unwrap();
    assert!(released(&item, "staff@example.com") && !released(&item, "boss@example.com"));
    assert_eq!(item.summary.status, jianmen_mta::quarantine::Status::Held);
    assert_eq!(post_link(&app, &link).await.0, StatusCode::CONFLICT);
    let audit = env.console.audit.recent(10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.actor == "link:staff@example.com" && e.action == "quarantine.release"),
        "{audit:?}"
    );

    // The portal lists the other recipient's copy with a working release form.
    let (s, html, _) = get_page(&app, &format!("/u/portal?t={portal}")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("Verify now"), "{html}");
    assert!(!released(&q.get(HELD).await.unwrap(), "boss@example.com"));
    let from_page = html
        .split("name=\"t\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(post_link(&app, &from_page).await.0, StatusCode::OK);
    let item = q.get(HELD).await.unwrap();
    assert_eq!(
        item.summary.status,
        jianmen_mta::quarantine::Status::Released
    );
    let (_, html, _) = get_page(&app, &format!("/u/portal?t={portal}")).await;
    assert!(!html.contains("Verify now"), "{html}");
}

#[actix_web::test]
async fn the_channel_board_shows_and_moves_channels_with_an_audit_trail() {
    let env = env().await;
    let app = app!(env);
    let (w, name) = ready(&app, &env, Role::System).await;
    // (The system page too: without [tls], the certificates generated at start.)
    let (s, sys, _, _) = call(&app, Some(&w), Method::GET, "/api/system", None).await;
    assert_eq!(s, StatusCode::OK, "{sys}");
    let roles: Vec<&str> = sys["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["international", "sm2-signing", "sm2-encryption"]);
    assert!(
        sys["certificates"][0]["file"].is_null() && sys["certificates"][0]["self_signed"] == true
    );
    let (s, b, _, _) = call(&app, Some(&w), Method::GET, "/api/channels", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let states: Vec<(String, String)> = b["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["channel"]["name"].as_str().unwrap().to_owned(),
                c["live"]["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("cn-1".to_owned(), "active".to_owned()),
            ("overseas".into(), "active".into()),
            ("spare".into(), "reserve".into())
        ]
    );
    assert_eq!(b["channels"][0]["channel"]["address"], "127.0.0.2");
    assert_eq!(b["channels"][0]["channel"]["kind"], "source");
    assert_eq!(b["watch"]["dnsbl"][0], "bl.test");
    // Draining one promotes the reserve; doing it twice is refused.
    let path = "/api/channels/overseas/drain";
    let (s, b, _, _) = call(&app, Some(&w), Method::POST, path, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let moves = b["changes"].to_string();
    assert!(
        moves.contains("\"channel\":\"overseas\"") && moves.contains("\"to\":\"drained\""),
        "{moves}"
    );
    assert!(moves.contains("\"channel\":\"spare\""), "{moves}");
    let (s, _, _, _) = call(&app, Some(&w), Method::POST, path, None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _, _, _) = call(
        &app,
        Some(&w),
        Method::POST,
        "/api/channels/nope/drain",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, b, _, _) = call(&app, Some(&w), Method::GET, "/api/channels", None).await;
    assert_eq!(b["channels"][1]["live"]["state"], "drained");
    assert_eq!(b["channels"][2]["live"]["state"], "active");
    assert_eq!(b["channels"][2]["live"]["promoted"], true);
    assert_eq!(
        b["channels"][1]["history"][0]["actor"],
        format!("console:{name}")
    );
    // Back in: the reserve stands down.
    let (s, _, _, _) = call(
        &app,
        Some(&w),
        Method::POST,
        "/api/channels/overseas/activate",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, b, _, _) = call(&app, Some(&w), Method::GET, "/api/channels", None).await;
    assert_eq!(b["channels"][1]["live"]["state"], "active");
    assert_eq!(b["channels"][2]["live"]["state"], "reserve");
    let actions: Vec<String> = env
        .console
        .audit
        .recent(50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&"channel.drain".to_owned())
            && actions.contains(&"channel.activate".to_owned()),
        "{actions:?}"
    );
}

#[actix_web::test]
async fn hunting_takes_one_bounded_term_and_finds_delivered_mail() {
    let env = env().await;
    let app = app!(env);
    let (w, _) = ready(&app, &env, Role::Security).await;
    env.hunt.index(
        chrono::Utc::now().timestamp(),
        "01HUNTHUNTHUNTHUNTHUNTHUNT",
        "bounce@bank.test",
        &["staff@example.com".into()],
        b"From: <notice@bank.test>\r\nMessage-ID: <h1@bank.test>\r\nSubject: Verify\r\n\r\nhttps://login.evil.test/x\r\n".to_vec(),
    );
    env.hunt.flush().await;
    let get = |path: String| {
        let (app, w) = (&app, &w);
        async move { call(app, Some(w), Method::GET, &path, None).await }
    };
    let (s, b, _, _) = get("/api/hunt?domain=evil.test".into()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["messages"][0]["message_id"], "h1@bank.test");
    assert_eq!(b["messages"][0]["rcpts"][0], "staff@example.com");
    let (_, b, _, _) = get("/api/hunt?sender=NOTICE@bank.test&days=1".into()).await;
    assert_eq!(b["messages"].as_array().unwrap().len(), 1, "{b}");
    for (query, field) in [
        ("", "sha256"),
        ("sha256=abc", "sha256"),
        ("domain=a.test&sender=b@c.test", "sender"),
        ("queue_id=nope", "queue_id"),
        ("domain=a.test&days=0", "days"),
        ("domain=a.test&bogus=1", "bogus"),
    ] {
        let (s, b, _, _) = get(format!("/api/hunt?{query}")).await;
        assert_eq!(
            (s, b["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{query}: {b}"
        );
    }
    let long = "x".repeat(3000);
    let (s, _, _, _) = get(format!("/api/hunt?url={long}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Without a mail system nothing can be recalled, and the console says why.
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::POST,
        "/api/recall",
        Some(json!({"queue_id": "01HUNTHUNTHUNTHUNTHUNTHUNT"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(b["error"].as_str().unwrap().contains("recall.imap"), "{b}");
}

#[actix_web::test]
async fn the_policy_is_edited_versioned_scoped_and_rolled_back() {
    let env = env_with("[scan]\nblock = [\"@spam.test\"]\n").await;
    let app = app!(env);
    let (w, _) = ready(&app, &env, Role::Security).await;
    let (s, b, _, _) = call(&app, Some(&w), Method::GET, "/api/policy", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["common"]["version"]["version"], 1, "{b}");
    assert_eq!(b["common"]["version"]["source"], "file", "{b}");
    assert_eq!(b["policy"]["actions"]["spam"], "tag", "{b}");

    // Spam to quarantine, a sender blocked, one domain's own phish threshold.
    let mut policy = b["policy"].clone();
    policy["actions"]["spam"] = json!("quarantine");
    policy["block"] = json!(["@spam.test", "bad@evil.test"]);
    policy["domains"] = json!([{"domain": "Example.COM", "thresholds": {"spam": 5.0, "spam_high": 12.0,
        "phish": 4.0, "bec": 6.0, "virus": 5.0}, "allow": [], "block": []}]);
    let edit =
        |base: i64, policy: &Value| json!({"base": base, "comment": "hold spam", "policy": policy});
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::PUT,
        "/api/policy",
        Some(edit(1, &policy)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["version"]["version"], 2, "{b}");
    let keys: Vec<&str> = b["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"actions.spam") && keys.contains(&"block ∋ bad@evil.test"),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"domains[example.com].thresholds.phish"),
        "{keys:?}"
    );

    // A save built on version 1 again is refused, not merged over version 2; so are wrong values,
    // each naming its key, and nothing is saved.
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::PUT,
        "/api/policy",
        Some(edit(1, &policy)),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    refused_policies(
        &app,
        &w,
        2,
        &policy,
        vec![
            (
                "thresholds",
                json!({"spam": 9.0, "spam_high": 3.0, "phish": 6.0, "bec": 6.0, "virus": 5.0}),
                "scan.thresholds",
            ),
            ("allow", json!(["not an address!"]), "scan.allow"),
            (
                "domains",
                json!([{"domain": "stranger.test"}]),
                "scan.policy[0].domain",
            ),
        ],
    )
    .await;
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::PUT,
        "/api/policy",
        Some(json!({"base": 2, "policy": {"actions": {"spam": "shred"}}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "an unknown action: {b}");

    // A per-domain administrator changes its own domain only, and reads no one else's.
    let dw = other_domain_admin(&app, &w, "exadmin").await;
    let (s, b, _, _) = call(&app, Some(&dw), Method::GET, "/api/policy", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        !b.to_string().contains("evil.test") && !b.to_string().contains("example.com"),
        "{b}"
    );
    assert_eq!(b["defaults"]["actions"]["spam"], "quarantine", "{b}");
    let (s, b, _, _) = call(
        &app,
        Some(&dw),
        Method::PUT,
        "/api/policy",
        Some(json!({"base": 2, "domain_policy": {"domain": "example.com", "block": ["x@y.test"]}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let v3 = env.console.policy.as_ref().unwrap().current().await;
    assert_eq!(v3.summary.version, 3);
    let names: Vec<&str> = v3
        .policy
        .domains
        .iter()
        .map(|d| d.domain.as_str())
        .collect();
    assert_eq!(
        names,
        ["example.com", "other.test"],
        "its own domain, whatever it named"
    );
    assert_eq!(
        v3.policy.domains[0].thresholds.as_ref().unwrap().phish,
        4.0,
        "example.com untouched"
    );
    assert_eq!(v3.policy.domains[1].block, ["x@y.test"]);
    let (s, _, _, _) = call(
        &app,
        Some(&dw),
        Method::PUT,
        "/api/policy",
        Some(edit(3, &policy)),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "not the whole policy");
    for path in ["/api/policy/versions", "/api/policy/versions/1"] {
        let (s, _, _, _) = call(&app, Some(&dw), Method::GET, path, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
    }

    // The versions, what each changed, and a roll-back to the file's.
    let (s, b, _, _) = call(&app, Some(&w), Method::GET, "/api/policy/versions", None).await;
    assert_eq!(s, StatusCode::OK);
    let listed: Vec<i64> = b["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, [3, 2, 1]);
    assert_eq!(b["versions"][1]["comment"], "hold spam");
    let (s, b, _, _) = call(&app, Some(&w), Method::GET, "/api/policy/versions/3", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b["changes"][0]["key"], "domains[other.test].block ∋ x@y.test",
        "{b}"
    );
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::POST,
        "/api/policy/versions/1/restore",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["version"]["version"], 4);
    assert_eq!(
        env.console.policy.as_ref().unwrap().current().await.policy,
        env.console.config.scan_policy()
    );
    let entries = env.console.audit.recent(50).await.unwrap();
    let saved: Vec<&str> = entries
        .iter()
        .filter(|e| e.action.starts_with("policy."))
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(saved, ["policy.restore", "policy.save", "policy.save"]);
    assert!(
        entries
            .iter()
            .any(|e| e.detail.contains("actions.spam: tag -> quarantine"))
    );

    // "Release and trust the sender": one copy released, the envelope sender allowed.
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::POST,
        &format!("/api/quarantine/{HELD}/release"),
        Some(json!({"rcpts": ["staff@example.com"], "allow_sender": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["rcpts"], json!(["staff@example.com"]));
    let now = env.console.policy.as_ref().unwrap().current().await;
    assert_eq!(
        (now.summary.version, now.policy.allow.as_slice()),
        (5, ["notice@bank.test".to_owned()].as_slice())
    );
    let entries = env.console.audit.recent(5).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.action == "policy.save" && e.detail.contains("allow notice@bank.test")),
        "{entries:?}"
    );

    // Refused file types (附件策略) are part of the policy, checked and put in lower case; a
    // DLP policy is refused where no scanner would put it in force (this console has none).
    let (s, b, _, _) = call(&app, Some(&w), Method::GET, "/api/policy", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        b["dlp_detectors"]
            .as_array()
            .unwrap()
            .contains(&json!("resident_id")),
        "{b}"
    );
    let mut policy = b["policy"].clone();
    policy["attachments"]["blocked"] = json!([".ISO", "exe"]);
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::PUT,
        "/api/policy",
        Some(edit(5, &policy)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["changes"][0]["key"], "attachments.blocked ∋ exe", "{b}");
    let now = env.console.policy.as_ref().unwrap().current().await;
    assert_eq!(now.policy.attachments.blocked, ["exe", "iso"]);
    // An editor that does not know the part (an older page, a script) leaves it as it is.
    let mut older = policy.clone();
    older.as_object_mut().unwrap().remove("attachments");
    older["thresholds"]["spam"] = json!(7.5);
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::PUT,
        "/api/policy",
        Some(edit(6, &older)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let now = env.console.policy.as_ref().unwrap().current().await;
    assert_eq!(now.policy.attachments.blocked, ["exe", "iso"], "kept");
    refused_policies(
        &app,
        &w,
        7,
        &policy,
        vec![
            (
                "attachments",
                json!({"blocked": ["e x e"]}),
                "scan.attachments.blocked",
            ),
            (
                "dlp",
                json!([{"name": "名单", "detect": {"resident_id": 5}, "action": "hold"}]),
                "dlp",
            ),
        ],
    )
    .await;
}

#[actix_web::test]
async fn tracking_lists_messages_and_their_timelines() {
    use jianmen_mta::tracking::{Event, EventKind};
    let env = env().await;
    let app = app!(env);
    let (w, _) = ready(&app, &env, Role::Security).await;
    let event = |queue_id: &str, at: i64, kind: EventKind, rcpts: &str, subject: &str| Event {
        at,
        queue_id: queue_id.into(),
        kind,
        mail_from: "sender@outside.test".into(),
        rcpts: rcpts.into(),
        subject: subject.into(),
        client_ip: "192.0.2.7".into(),
        class: "clean".into(),
        score: 0.5,
        detail: String::new(),
        direction: String::new(),
    };
    let (a, b) = ("01TRACKAAAAAAAAAAAAAAAAAAA", "01TRACKBBBBBBBBBBBBBBBBBBB");
    let t = &env.console.tracker;
    t.record(event(
        a,
        100,
        EventKind::Queued,
        "x@example.com,y@other.test",
        "budget 2027",
    ));
    t.record(event(b, 101, EventKind::Queued, "z@example.com", "lunch"));
    t.record(event(a, 102, EventKind::Deferred, "y@other.test", ""));
    t.record(event(a, 103, EventKind::Delivered, "x@example.com", ""));
    t.record(event(a, 104, EventKind::Delivered, "y@other.test", ""));
    t.flush().await;

    let get = |path: String| {
        let (app, w) = (&app, &w);
        async move { call(app, Some(w), Method::GET, &path, None).await }
    };
    let (s, page, _, _) = get("/api/tracking/messages?subject=budget".into()).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 1);
    let row = &page["messages"][0];
    assert_eq!(
        (
            row["first"]["queue_id"].as_str(),
            row["latest"]["kind"].as_str(),
            row["events"].as_i64()
        ),
        (Some(a), Some("delivered"), Some(4))
    );
    let (_, page, _, _) = get("/api/tracking/messages?id=01trackb".into()).await;
    assert_eq!(page["messages"][0]["first"]["queue_id"], b, "{page}");
    let (_, page, _, _) = get("/api/tracking/messages?limit=1&offset=1".into()).await;
    assert_eq!(
        (
            page["total"].as_i64(),
            page["messages"][0]["first"]["queue_id"].as_str()
        ),
        (Some(2), Some(a))
    );
    for bad in ["id=a%25b", "limit=1000", "id=x*"] {
        let (s, _, _, _) = get(format!("/api/tracking/messages?{bad}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (s, timeline, _, _) = get(format!("/api/tracking/messages/{a}")).await;
    assert_eq!(s, StatusCode::OK);
    let kinds: Vec<&str> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["queued", "deferred", "delivered", "delivered"],
        "oldest first"
    );
    // A release is followed to its copy's delivery.
    let copy = "01TRACKCCCCCCCCCCCCCCCCCCC";
    t.record(Event {
        detail: format!("released by console:x as {copy}"),
        ..event(b, 105, EventKind::Released, "z@example.com", "")
    });
    t.record(event(copy, 106, EventKind::Delivered, "z@example.com", ""));
    t.flush().await;
    let (_, timeline, _, _) = get(format!("/api/tracking/messages/{b}")).await;
    let kinds: Vec<&str> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["queued", "released", "delivered"]);
    let (s, _, _, _) = get("/api/tracking/messages/01NOSUCHNOSUCHNOSUCHNOSUCH".into()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// The UI libraries compiled into the console are the ones `webui/vendor/fetch.sh` pinned.
#[actix_web::test]
async fn vendored_libraries_match_their_checksums() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pages/vendor");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let mut checked = 0;
    for line in sums.lines() {
        let (want, file) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let got = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let got: String = got.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, want, "{file}");
        checked += 1;
    }
    assert!(checked >= 2, "{sums}");
}

/// Certificates replaced through the API: only the system administrator may; garbage, a
/// stranger's key and an SM2 role given an international certificate are refused with codes
/// the page words; a good pair is installed (and listed as such), a request keeps its key
/// here, and removing the pair serves the configured one again. Each change is audited.
#[actix_web::test]
async fn certificates_are_checked_installed_requested_and_removed() {
    use jianmen_gm::pair;
    use jianmen_gm::tls::Identity;
    let env = env().await;
    let app = app!(env);
    let (sec, _) = ready(&app, &env, Role::Security).await;
    let (sys, _) = ready(&app, &env, Role::System).await;
    let (good_chain, good_key) = pair::to_pem(&Identity::self_signed("gw.test").unwrap());
    let (_, stranger_key) = pair::to_pem(&Identity::self_signed("gw.test").unwrap());
    let install = |cert: &str, key: &str| json!({ "cert": cert, "key": key });
    let path = "/api/certificates/international";

    let (s, _, _, _) = call(
        &app,
        Some(&sec),
        Method::POST,
        path,
        Some(install(&good_chain, &good_key)),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (body, code) in [
        (install("not a certificate", &good_key), "cert_unreadable"),
        (install(&good_chain, &stranger_key), "cert_mismatch"),
        (
            json!({ "pkcs12": "bm90IGEgcGtjczEy", "password": "x" }),
            "cert_pkcs12",
        ),
    ] {
        let (s, b, _, _) = call(&app, Some(&sys), Method::POST, path, Some(body)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["code"], code, "{b}");
    }
    let (s, b, _, _) = call(
        &app,
        Some(&sys),
        Method::POST,
        "/api/certificates/sm2-signing",
        Some(install(&good_chain, &good_key)),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("cert_unsuitable")),
        "{b}"
    );
    let (s, b, _, _) = call(
        &app,
        Some(&sys),
        Method::POST,
        "/api/certificates/nonsense",
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    // Nothing was installed by the refusals.
    let (_, b, _, _) = call(&app, Some(&sys), Method::GET, "/api/system", None).await;
    // The clock is told, in the configured zone.
    assert_eq!(b["clock"]["zone"], "Asia/Shanghai", "{b}");
    assert!((b["clock"]["now"].as_i64().unwrap() - chrono::Utc::now().timestamp()).abs() <= 5);
    assert!(
        b["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["installed"] == false),
        "{b}"
    );

    let (s, b, _, _) = call(
        &app,
        Some(&sys),
        Method::POST,
        path,
        Some(install(&good_chain, &good_key)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        b["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "self_signed"),
        "{b}"
    );
    assert_eq!(b["sha256"].as_str().map(str::len), Some(64), "{b}");
    let (_, b, _, _) = call(&app, Some(&sys), Method::GET, "/api/system", None).await;
    let international = b["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role"] == "international")
        .cloned()
        .unwrap();
    assert_eq!(international["installed"], true, "{b}");
    assert_eq!(international["subject"], "CN=gw.test", "{b}");

    // A request: the key stays here; a certificate without a key and without a request is refused.
    let (s, b, _, _) = call(
        &app,
        Some(&sys),
        Method::POST,
        "/api/certificates/sm2-encryption",
        Some(json!({ "cert": good_chain })),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("cert_no_request")),
        "{b}"
    );
    let (s, b, _, _) = call(
        &app,
        Some(&sys),
        Method::POST,
        "/api/certificates/sm2-encryption/request",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        b["csr"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
        "{b}"
    );
    // A waiting request's key is replaced only when asked.
    let again = "/api/certificates/sm2-encryption/request";
    let (s, b, _, _) = call(&app, Some(&sys), Method::POST, again, None).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("cert_request_pending")),
        "{b}"
    );
    let replace = Some(json!({ "replace": true }));
    let (s, b, _, _) = call(&app, Some(&sys), Method::POST, again, replace).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Chain and key in one text.
    let combined = json!({ "cert": format!("{good_chain}{good_key}") });
    let (s, b, _, _) = call(&app, Some(&sys), Method::POST, path, Some(combined)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, b, _, _) = call(&app, Some(&sys), Method::GET, "/api/system", None).await;
    assert!(
        b["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["role"] == "sm2-encryption" && c["request_pending"] == true),
        "{b}"
    );

    let (s, _, _, _) = call(&app, Some(&sys), Method::DELETE, path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b, _, _) = call(&app, Some(&sys), Method::DELETE, path, None).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("cert_not_installed")),
        "{b}"
    );
    let (_, b, _, _) = call(&app, Some(&sys), Method::GET, "/api/system", None).await;
    assert!(
        b["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["installed"] == false),
        "{b}"
    );
    let rows = env.console.audit.recent(20).await.unwrap();
    for action in ["tls.install", "tls.request", "tls.remove"] {
        assert!(rows.iter().any(|r| r.action == action), "{action} audited");
    }
}

/// Recipients' own lists: kept per protected recipient, checked, all-or-none, scoped for a
/// per-domain administrator, audited.
#[actix_web::test]
async fn own_lists_are_kept_checked_scoped_and_audited() {
    let env = env().await;
    let app = app!(env);
    let (w, _) = ready(&app, &env, Role::Security).await;
    let path = "/api/own-lists/Dora@Example.com";
    let (s, b, _, _) = call(
        &app,
        Some(&w),
        Method::POST,
        path,
        Some(json!({"list": "allow", "entries": ["boss@partner.test", "@supplier.test", "boss@partner.test"]})),
    )
    .await;
    assert_eq!((s, &b["added"]), (StatusCode::OK, &json!(2)), "{b}");
    for (owner, body, code) in [
        (
            "dora@example.com",
            json!({"list": "block", "entries": ["ok.test", "not an entry"]}),
            "list_entry",
        ),
        (
            "eve@elsewhere.test",
            json!({"list": "block", "entries": ["ok.test"]}),
            "own_owner",
        ),
    ] {
        let (s, b, _, _) = call(
            &app,
            Some(&w),
            Method::POST,
            &format!("/api/own-lists/{owner}"),
            Some(body),
        )
        .await;
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{b}"
        );
    }
    let (s, b, _, _) = call(&app, Some(&w), Method::GET, path, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let entries: Vec<&str> = b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"].as_str().unwrap())
        .collect();
    assert_eq!(entries, ["boss@partner.test", "@supplier.test"], "{b}");
    let (_, b, _, _) = call(
        &app,
        Some(&w),
        Method::GET,
        "/api/own-lists?owner=dor",
        None,
    )
    .await;
    assert_eq!(
        b["owners"],
        json!([{"owner": "dora@example.com", "allow": 2, "block": 0}])
    );

    // A per-domain administrator of other.test neither sees nor changes example.com's.
    let dw = other_domain_admin(&app, &w, "otheradmin").await;
    let (_, b, _, _) = call(&app, Some(&dw), Method::GET, "/api/own-lists", None).await;
    assert_eq!(b["owners"], json!([]), "{b}");
    for method in [Method::GET, Method::DELETE] {
        let (s, b, _, _) = call(
            &app,
            Some(&dw),
            method,
            "/api/own-lists/dora@example.com?list=allow&entry=@supplier.test",
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    }
    let (s, b, _, _) = call(
        &app,
        Some(&dw),
        Method::POST,
        "/api/own-lists/ed@other.test",
        Some(json!({"list": "block", "entries": ["spam.test"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let (s, _, _, _) = call(
        &app,
        Some(&w),
        Method::DELETE,
        "/api/own-lists/dora@example.com?list=allow&entry=%40supplier.test",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _, _) = call(
        &app,
        Some(&w),
        Method::DELETE,
        "/api/own-lists/dora@example.com?list=allow&entry=%40supplier.test",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "removed once");
    let audited: Vec<String> = env
        .console
        .audit
        .recent(20)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action.starts_with("ownlist."))
        .map(|e| format!("{} {}", e.action, e.detail))
        .collect();
    assert_eq!(audited.len(), 3, "{audited:?}");
    assert!(
        audited
            .iter()
            .any(|a| a.starts_with("ownlist.remove dora@example.com allow: @supplier.test")),
        "{audited:?}"
    );
    assert!(
        audited
            .iter()
            .any(|a| a.contains("ed@other.test block: 1 new of 1 (spam.test)")),
        "{audited:?}"
    );
}

#[actix_web::test]
async fn a_backup_is_sealed_for_system_administrators_and_restores_the_accounts() {
    let env = env().await;
    let app = app!(env);
    let (system, _) = ready(&app, &env, Role::System).await;
    let (security, security_name) = ready(&app, &env, Role::Security).await;
    let (s, b, _, _) = call(
        &app,
        Some(&security),
        Method::POST,
        "/api/own-lists/dora@example.com",
        Some(json!({"list": "block", "entries": ["bad.test"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b, _, _) = call(
        &app,
        Some(&system),
        Method::POST,
        "/api/system/backup",
        Some(json!({"passphrase": "too short"})),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("backup_passphrase")),
        "{b}"
    );

    let passphrase = "correct horse battery staple";
    let req = test::TestRequest::post()
        .uri("/api/system/backup")
        .peer_addr("127.0.0.1:40000".parse().unwrap())
        .insert_header(("Cookie", format!("__Host-jianmen={}", system.cookie)))
        .insert_header(("X-CSRF-Token", system.csrf.clone()))
        .set_json(json!({ "passphrase": passphrase }))
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let disposition = resp
        .headers()
        .get("Content-Disposition")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"jianmen-gw.test-")
            && disposition.ends_with(".jbk\""),
        "{disposition}"
    );
    let sealed = test::read_body(resp).await;
    let opened = jianmen_mta::backup::open(&sealed, passphrase).unwrap();
    assert_eq!(opened.config.server.hostname, "gw.test");
    for file in [
        "etc/jianmen.toml",
        "settings/jianmen.db",
        "settings/console.db",
    ] {
        assert!(
            opened.manifest.files.iter().any(|f| f == file),
            "{file}: {:?}",
            opened.manifest.files
        );
    }
    // The data directory is the configuration's directory here: its databases are not taken
    // as configuration.
    assert!(
        !opened.manifest.files.iter().any(|f| f == "etc/audit.db"),
        "{:?}",
        opened.manifest.files
    );
    assert!(jianmen_mta::backup::open(&sealed, "correct horse battery stapler").is_err());
    let audit = env.console.audit.recent(10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == "backup.make" && r.detail.contains("files")),
        "{audit:?}"
    );

    // Restored elsewhere, the accounts (with the changed password) and the lists are there.
    let elsewhere = tempfile::tempdir().unwrap();
    opened.restore_data(elsewhere.path()).unwrap();
    let accounts = Accounts::open(
        elsewhere.path(),
        env.console.config.console.clone().unwrap(),
    )
    .await
    .unwrap();
    let names: Vec<String> = accounts
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert!(names.contains(&security_name), "{names:?}");
    assert!(
        accounts
            .login(
                &security_name,
                NEW_PASSWORD,
                None,
                "127.0.0.1",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64
            )
            .await
            .is_ok(),
        "the changed password came back"
    );
    let store = SqliteStore::open(&elsewhere.path().join("jianmen.db"))
        .await
        .unwrap();
    let book =
        jianmen_mta::ownlists::OwnListBook::open(Arc::new(store), vec!["example.com".into()], None)
            .await
            .unwrap();
    assert_eq!(book.entries("dora@example.com").await.unwrap().len(), 1);
}

#[actix_web::test]
async fn system_settings_are_checked_kept_apart_from_the_file_and_audited() {
    let env = env().await;
    let app = app!(env);
    let (system, _) = ready(&app, &env, Role::System).await;
    let (security, _) = ready(&app, &env, Role::Security).await;
    let path = "/api/system/settings";
    let (s, b, _, _) = call(&app, Some(&system), Method::GET, path, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["file"]["protected"], json!(["example.com", "other.test"]));
    assert_eq!(
        (&b["saved"], &b["pending"], &b["state"]["state"]),
        (&Value::Null, &json!(false), &json!("none"))
    );
    let kept = jianmen_mta::settings::path(&env.console.config.server.data_dir);
    // A port another program holds, a privileged one the gateway does not serve, an address
    // this machine does not have: each refused, naming the listener.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();

    for (body, field) in [
        (json!({"smtp_listen": [taken]}), "smtp.listen"),
        (json!({"smtp_listen": ["0.0.0.0:22"]}), "smtp.listen"),
        (json!({"smtp_listen": ["192.0.2.1:2525"]}), "smtp.listen"),
        (json!({"console_listen": "127.0.0.1:80"}), "console.listen"),
        (
            json!({"smtp_listen": ["0.0.0.0:2626", "127.0.0.1:2626"]}),
            "smtp.listen",
        ),
        (
            json!({"routes": [{"domain": "new.test", "host": ""}]}),
            "route[0].host",
        ),
        (
            json!({"routes": [{"domain": "new.test", "host": "h", "port": 0}]}),
            "route[0].port",
        ),
        (
            json!({"protected": ["example.com", "not a domain"]}),
            "domains.protected",
        ),
        (json!({"protected": []}), "domains.protected"),
        (json!({"syslog": "collector.test"}), "audit.syslog"),
        // A file a root process would read cannot be named here.
        (
            json!({"routes": [{"domain": "x.test", "host": "h", "tls_ca": "/etc/shadow"}]}),
            "body",
        ),
        (json!({}), "body"),
    ] {
        let (s, b, _, _) = call(&app, Some(&system), Method::PUT, path, Some(body.clone())).await;
        assert_eq!(
            (s, b["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {b}"
        );
    }
    assert!(!kept.exists(), "nothing refused is kept");
    let (s, _, _, _) = call(
        &app,
        Some(&security),
        Method::PUT,
        path,
        Some(json!({"syslog": ""})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let change = json!({
        "protected": ["example.com", "other.test", "New.Test"],
        "routes": [{"domain": "new.test", "host": "10.0.0.9", "port": 2525, "tls": "required"}],
        "syslog": "127.0.0.1:6514",
    });
    let (s, b, _, _) = call(&app, Some(&system), Method::PUT, path, Some(change)).await;
    assert_eq!((s, &b["pending"]), (StatusCode::OK, &json!(true)), "{b}");
    // What a start loads: the file with the settings laid over it.
    let file = env.console.config.file.clone().unwrap();
    let loaded = Config::load(&file).unwrap();
    assert_eq!(
        loaded.domains.protected,
        ["example.com", "other.test", "new.test"]
    );
    assert_eq!((loaded.routes.len(), loaded.routes[0].port), (1, 2525));
    assert_eq!(loaded.audit.syslog.as_deref(), Some("127.0.0.1:6514"));
    assert_eq!(
        loaded.settings,
        jianmen_mta::settings::SettingsState::Applied
    );
    let (_, b, _, _) = call(&app, Some(&system), Method::GET, path, None).await;
    assert_eq!(
        (
            b["saved"]["protected"].as_array().map(Vec::len),
            &b["pending"]
        ),
        (Some(3), &json!(true)),
        "{b}"
    );
    let audit = env.console.audit.recent(10).await.unwrap();
    let changed = audit
        .iter()
        .find(|r| r.action == "settings.change")
        .expect("audited");
    assert!(
        changed.detail.contains("new.test") && changed.detail.contains("syslog"),
        "{}",
        changed.detail
    );

    // No service manager here: a restart is refused in words, not done.
    let (s, b, _, _) = call(
        &app,
        Some(&system),
        Method::POST,
        "/api/system/restart",
        None,
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_supervised")),
        "{b}"
    );

    let (s, _, _, _) = call(&app, Some(&system), Method::DELETE, path, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        Config::load(&file).unwrap().domains.protected,
        ["example.com", "other.test"]
    );
    let (s, _, _, _) = call(&app, Some(&system), Method::DELETE, path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Settings the file no longer agrees with are not applied: the file alone runs, and says why.
    let (s, b, _, _) = call(
        &app,
        Some(&system),
        Method::PUT,
        path,
        Some(json!({"protected": ["example.com"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{text}\n[[scan.policy]]\ndomain = \"other.test\"\n"),
    )
    .unwrap();
    let loaded = Config::load(&file).unwrap();
    assert_eq!(loaded.domains.protected, ["example.com", "other.test"]);
    assert!(
        matches!(&loaded.settings, jianmen_mta::settings::SettingsState::Refused(why) if why.contains("other.test")),
        "{:?}",
        loaded.settings
    );

    // A saved file that no longer reads is shown as such and can still be removed.
    std::fs::write(&kept, "protected = 7\n").unwrap();
    let (s, b, _, _) = call(&app, Some(&system), Method::GET, path, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["unreadable"].is_string() && b["saved"].is_null(), "{b}");
    let (s, _, _, _) = call(&app, Some(&system), Method::DELETE, path, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!kept.exists());
}
