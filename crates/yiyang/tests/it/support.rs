use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;
use yiyang::app::{self, AppState, Config};
use yiyang::audit::Who;
use yiyang::identity::Scopes;
use yiyang::identity::http::{NewUser, insert_user};
use yiyang::platform::crypto::KeyRing;
use yiyang::platform::db::Db;

pub struct TestApp {
    pub state: AppState,
    pub router: axum::Router,
    pub sqlite_path: Option<std::path::PathBuf>,
    pub pg_url: Option<String>,
    _dir: tempfile::TempDir,
}

pub const PASSWORD: &str = "Test-pass-2026";

/// A fresh database: a temp SQLite file, or a new PostgreSQL database when TEST_DATABASE_URL is set.
pub async fn fresh_db() -> (
    Db,
    Option<std::path::PathBuf>,
    Option<String>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    match std::env::var("TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => {
            let admin = Db::connect(&base, 1)
                .await
                .expect("connect TEST_DATABASE_URL");
            let name = format!("yiyang_t_{}", uuid::Uuid::now_v7().simple());
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin.pool)
                .await
                .unwrap();
            let (prefix, _) = base.rsplit_once('/').expect("url with database");
            let url = format!("{prefix}/{name}");
            let db = Db::connect(&url, 8).await.unwrap();
            db.use_keys(&test_keys());
            (db, None, Some(url), dir)
        }
        _ => {
            let path = dir.path().join("t.db");
            let db = Db::connect(path.to_str().unwrap(), 8).await.unwrap();
            db.use_keys(&test_keys());
            (db, Some(path), None, dir)
        }
    }
}

/// The key file every test database uses.
pub fn test_keys() -> KeyRing {
    KeyRing::from_bytes([7; 32], [9; 32])
}

impl TestApp {
    /// Migrated, with the demo county's regions and `elders` generated elders.
    pub async fn new(profile: &str, elders: usize) -> TestApp {
        let (db, sqlite_path, pg_url, dir) = fresh_db().await;
        yiyang::platform::migrations::migrate(&db).await.unwrap();
        let keys = test_keys();
        let villages = yiyang::demo::ensure_regions(&db).await.unwrap();
        if elders > 0 {
            let e = yiyang::demo::generate(elders, &villages, 42, yiyang::platform::today());
            yiyang::demo::insert_elders(&db, &keys, &e, "测试")
                .await
                .unwrap();
        }
        let config = Config {
            profile: profile.into(),
            login_attempts_per_minute: 10_000,
            files_dir: dir.path().join("files"),
            ..Config::default()
        };
        let state = AppState::new(db, keys, config).await.unwrap();
        let router = app::router(state.clone());
        TestApp {
            state,
            router,
            sqlite_path,
            pg_url,
            _dir: dir,
        }
    }

    pub async fn add_user(&self, username: &str, roles: &[&str], region: &str, scopes: Scopes) {
        self.add_user_in(username, roles, region, scopes, None)
            .await
    }

    /// An account bound to one organisation (a home's manager).
    pub async fn add_user_in(
        &self,
        username: &str,
        roles: &[&str],
        region: &str,
        scopes: Scopes,
        org_id: Option<&str>,
    ) {
        self.add_user_staff(username, roles, region, scopes, org_id, None)
            .await
    }

    /// An account bound to one organisation and, for a caregiver, to her staff record.
    pub async fn add_user_staff(
        &self,
        username: &str,
        roles: &[&str],
        region: &str,
        scopes: Scopes,
        org_id: Option<&str>,
        staff_id: Option<&str>,
    ) {
        let u = NewUser {
            username: username.into(),
            display_name: format!("测试{username}"),
            password: PASSWORD.into(),
            roles: roles.iter().map(|s| s.to_string()).collect(),
            region_code: region.into(),
            scopes,
            org_id: org_id.map(str::to_string),
            staff_id: staff_id.map(str::to_string),
        };
        let mut tx = self.state.db.begin().await.unwrap();
        insert_user(
            &self.state.db,
            &mut tx,
            &Who {
                actor_id: None,
                actor_name: "test".into(),
            },
            &u,
            None,
            false,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        cookie: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024 * 1024)
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(format!("<{} bytes>", bytes.len())));
        (status, v, headers)
    }

    pub async fn raw(&self, req: Request<Body>) -> (StatusCode, Vec<u8>, axum::http::HeaderMap) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 256 * 1024 * 1024)
            .await
            .unwrap();
        (status, bytes.to_vec(), headers)
    }

    /// Log in with password (demo profile: no TOTP) and return the cookie pair.
    pub async fn login(&self, username: &str) -> String {
        let (s, v, h) = self
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(serde_json::json!({"username": username, "password": PASSWORD})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["next"], "done", "{v}");
        cookie_of(&h)
    }

    pub async fn multipart(
        &self,
        uri: &str,
        cookie: &str,
        file_name: &str,
        data: &[u8],
        dry_run: bool,
    ) -> (StatusCode, Value) {
        let boundary = "XyZ123boundary";
        let mut body = vec![];
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"dry_run\"\r\n\r\n{dry_run}\r\n").as_bytes());
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let req = Request::builder()
            .method("POST")
            .uri(uri)
            .header(header::COOKIE, cookie)
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .unwrap();
        let (s, b, _) = self.raw(req).await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    /// A multipart POST with any fields: (name, file name for a file part, bytes).
    pub async fn multipart_fields(
        &self,
        uri: &str,
        cookie: &str,
        fields: Vec<(&str, Option<&str>, Vec<u8>)>,
    ) -> (StatusCode, Value) {
        let boundary = "XyZ123boundary";
        let mut body = vec![];
        for (name, file, data) in fields {
            match file {
                Some(f) => body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes()),
                None => body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
            }
            body.extend_from_slice(&data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let req = Request::builder()
            .method("POST")
            .uri(uri)
            .header(header::COOKIE, cookie)
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .unwrap();
        let (s, b, _) = self.raw(req).await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    /// Upload a file to an import endpoint (`dry`: a dry run), which must accept the job, and
    /// return the finished job's status.
    pub async fn import_file(
        &self,
        uri: &str,
        cookie: &str,
        name: &str,
        data: &[u8],
        dry: bool,
    ) -> Value {
        let (s, job) = self.multipart(uri, cookie, name, data, dry).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{job}");
        self.wait_job(job["id"].as_str().unwrap(), cookie).await
    }

    /// Wait for an import job to finish and return its status.
    pub async fn wait_job(&self, id: &str, cookie: &str) -> Value {
        for _ in 0..600 {
            let (s, v, _) = self
                .call("GET", &format!("/api/v1/imports/{id}"), Some(cookie), None)
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            if v["state"] == "done" || v["state"] == "failed" {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("import job did not finish");
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        use sqlx::Row;
        sqlx::query(sql)
            .fetch_one(&self.state.db.pool)
            .await
            .unwrap()
            .get(0)
    }

    /// Every entitlement as one table, `entitlement_all`, made afresh: the rows and the grants
    /// still packed (`catalog::pack`), the latter as rows a run writes them (no version, no time
    /// of their own). Tests that count or look up entitlements read it.
    pub async fn unpack(&self) {
        unpack(&self.state.db).await
    }
}

/// [`TestApp::unpack`] for a database.
pub async fn unpack(db: &Db) {
    sqlx::query("DROP TABLE IF EXISTS entitlement_all")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE entitlement_all AS SELECT * FROM entitlement")
        .execute(&db.pool)
        .await
        .unwrap();
    let packed =
        yiyang::catalog::pack::of_catalog(&mut db.pool.acquire().await.unwrap(), None, |_| true)
            .await
            .unwrap();
    for h in packed {
        sqlx::query(
            "INSERT INTO entitlement_all (id, elder_id, catalog_region, item_code, state, tier, amount_fen, quota, \
             residence_region, since, run_id, reasons) VALUES ($1, $2, $3, $4, 'granted', $5, $6, $7, $8, $9, $10, '')",
        )
        .bind(h.id())
        .bind(&h.entry.elder_id)
        .bind(&h.pack.catalog_region)
        .bind(&h.entry.item_code)
        .bind(&h.entry.tier)
        .bind(h.entry.amount_fen)
        .bind(h.entry.quota)
        .bind(&h.entry.residence)
        .bind(&h.pack.since)
        .bind(&h.pack.run_id)
        .execute(&db.pool)
        .await
        .unwrap();
    }
}

pub fn cookie_of(h: &axum::http::HeaderMap) -> String {
    h.get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|c| c.starts_with("yiyang_session=") && c.len() > "yiyang_session=".len())
        .expect("session cookie")
        .to_string()
}

pub fn all_scopes() -> Scopes {
    Scopes {
        edit: true,
        aggregates: true,
        individuals: true,
    }
}

/// Citizen IDs in clear under a path (`yiyang scan-clear-ids`); true when none is found.
pub fn scan_clear(path: &std::path::Path) -> (bool, String) {
    let found = yiyang::platform::crypto::scan_clear_ids(&[path.to_path_buf()]).expect("scan");
    (found.is_empty(), found.join("\n"))
}
