//! One config file, `yiyang.toml` (`--config FILE`, `YIYANG_CONFIG`, or `./yiyang.toml` when it
//! exists). Every setting has one environment variable; the file fills in those that are not set,
//! before the command line is read. So a flag beats the environment, the environment beats the
//! file, and the file beats the default — one rule for every setting, and the code that reads a
//! setting reads it in one place whichever way it was given.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Text,
    Int(i64, i64),
    Bool,
    Addr,
    IpList,
    Url,
    Path,
    Profile,
}

pub struct Setting {
    /// `section.name` in the file.
    pub key: &'static str,
    pub env: &'static str,
    pub kind: Kind,
    /// Never printed.
    pub secret: bool,
    pub default: &'static str,
    pub help: &'static str,
}

const fn s(
    key: &'static str,
    env: &'static str,
    kind: Kind,
    secret: bool,
    default: &'static str,
    help: &'static str,
) -> Setting {
    Setting {
        key,
        env,
        kind,
        secret,
        default,
        help,
    }
}

/// Every setting, in the order `config check` prints them.
pub const SETTINGS: &[Setting] = &[
    s(
        "server.listen",
        "YIYANG_LISTEN",
        Kind::Addr,
        false,
        "127.0.0.1:8080",
        "服务监听地址",
    ),
    s(
        "server.profile",
        "YIYANG_PROFILE",
        Kind::Profile,
        false,
        "production",
        "production（员工须动态口令）或 demo",
    ),
    s(
        "server.secure_cookies",
        "YIYANG_SECURE_COOKIES",
        Kind::Bool,
        false,
        "",
        "Cookie 仅经 HTTPS 发送并启用 HSTS（默认：production 开，demo 关）",
    ),
    s(
        "server.trusted_proxies",
        "YIYANG_TRUSTED_PROXIES",
        Kind::IpList,
        false,
        "",
        "可信反向代理地址（其 X-Forwarded-For 被采信）",
    ),
    s(
        "server.office_phone",
        "YIYANG_OFFICE_PHONE",
        Kind::Text,
        false,
        "",
        "公开页面上民政局办公电话",
    ),
    s(
        "database.url",
        "YIYANG_DATABASE_URL",
        Kind::Url,
        true,
        "./data/yiyang.db",
        "数据库：SQLite 文件路径或 postgres://…",
    ),
    s(
        "database.pool",
        "YIYANG_POOL",
        Kind::Int(1, 512),
        false,
        "16",
        "数据库连接池大小",
    ),
    s(
        "keys.file",
        "YIYANG_KEY_FILE",
        Kind::Path,
        false,
        "./data/yiyang.key",
        "加密与盲索引的密钥文件（须另行备份）",
    ),
    s(
        "files.dir",
        "YIYANG_FILES_DIR",
        Kind::Path,
        false,
        "",
        "上门服务照片等文件的存放目录（默认密钥文件旁 files/，须与数据库一同备份）",
    ),
    s(
        "audit.checkpoints",
        "YIYANG_AUDIT_CHECKPOINTS",
        Kind::Text,
        false,
        "",
        "审计链检查点文件（off 为不写；默认密钥文件旁 audit-checkpoints.log）",
    ),
    s(
        "audit.checkpoint_notify",
        "YIYANG_AUDIT_CHECKPOINT_NOTIFY",
        Kind::Bool,
        false,
        "false",
        "检查点同时发送到通知网关",
    ),
    s(
        "metrics.listen",
        "YIYANG_METRICS_LISTEN",
        Kind::Addr,
        false,
        "",
        "另一个只供内网抓取 /metrics 的监听地址",
    ),
    s(
        "metrics.token",
        "YIYANG_METRICS_TOKEN",
        Kind::Text,
        true,
        "",
        "主地址上 /metrics 的访问令牌（至少 16 个字符）",
    ),
    s(
        "notify.url",
        "YIYANG_NOTIFY_URL",
        Kind::Url,
        false,
        "",
        "短信等消息网关的 HTTP 地址",
    ),
    s(
        "notify.token",
        "YIYANG_NOTIFY_TOKEN",
        Kind::Text,
        true,
        "",
        "消息网关的访问令牌",
    ),
    s(
        "mqtt.client_id",
        "YIYANG_MQTT_CLIENT_ID",
        Kind::Text,
        false,
        "yiyang-server",
        "在 MQTT 代理上的客户端标识（代理按它保留未确认的消息）",
    ),
    s(
        "imports.chunk_ms",
        "YIYANG_IMPORT_CHUNK_MS",
        Kind::Int(5, 5000),
        false,
        "20",
        "导入每次提交占用写锁的毫秒数",
    ),
    s(
        "imports.bulk_rate",
        "YIYANG_BULK_RATE",
        Kind::Int(10, 1_000_000),
        false,
        "",
        "导入或批量运行期间每秒放行的请求数（默认每核 SQLite 450、PostgreSQL 350）",
    ),
    s(
        "imports.bulk_concurrency",
        "YIYANG_BULK_CONCURRENCY",
        Kind::Int(0, 10_000),
        false,
        "",
        "导入或批量运行期间同时处理的请求数（默认 PostgreSQL 每核 1 个，SQLite 不限；0 为不限）",
    ),
    s(
        "sessions.idle_minutes",
        "YIYANG_IDLE_MINUTES",
        Kind::Int(1, 1440),
        false,
        "30",
        "会话空闲多少分钟后失效",
    ),
    s(
        "sessions.absolute_hours",
        "YIYANG_ABSOLUTE_HOURS",
        Kind::Int(1, 168),
        false,
        "12",
        "会话最长有效小时数",
    ),
    s(
        "login.lockout_failures",
        "YIYANG_LOCKOUT_FAILURES",
        Kind::Int(3, 100),
        false,
        "5",
        "连续登录失败多少次锁定账号",
    ),
    s(
        "login.lockout_minutes",
        "YIYANG_LOCKOUT_MINUTES",
        Kind::Int(1, 1440),
        false,
        "15",
        "锁定多少分钟",
    ),
    s(
        "login.attempts_per_minute",
        "YIYANG_LOGIN_PER_MINUTE",
        Kind::Int(1, 100_000),
        false,
        "30",
        "每个来源地址每分钟的登录尝试上限",
    ),
    s(
        "public.requests_per_minute",
        "YIYANG_PUBLIC_PER_MINUTE",
        Kind::Int(1, 100_000),
        false,
        "60",
        "公开页面每个来源地址每分钟的请求上限",
    ),
    s(
        "mqtt.url",
        "YIYANG_MQTT_URL",
        Kind::Url,
        false,
        "mqtt://127.0.0.1:1883",
        "设备报警的 MQTT 服务器（紧急呼叫功能使用）",
    ),
    s(
        "mqtt.username",
        "YIYANG_MQTT_USERNAME",
        Kind::Text,
        false,
        "",
        "MQTT 用户名",
    ),
    s(
        "mqtt.password",
        "YIYANG_MQTT_PASSWORD",
        Kind::Text,
        true,
        "",
        "MQTT 密码",
    ),
    s(
        "mqtt.ca_file",
        "YIYANG_MQTT_CA_FILE",
        Kind::Path,
        false,
        "",
        "MQTT 使用 TLS 时的 CA 证书",
    ),
];

/// The variables this process took from the file (the others it has came from the environment).
static FROM_FILE: OnceLock<(PathBuf, HashSet<&'static str>)> = OnceLock::new();

/// The config file named on the command line (`--config F` / `--config=F`), by `YIYANG_CONFIG`, or
/// `./yiyang.toml` when there is one.
pub fn locate(args: &[String]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    if let Ok(v) = std::env::var("YIYANG_CONFIG")
        && !v.is_empty()
    {
        return Some(PathBuf::from(v));
    }
    let here = PathBuf::from("yiyang.toml");
    here.exists().then_some(here)
}

/// The file's settings by key, each checked against its kind. The error names the line to fix.
pub fn read(path: &Path) -> Result<BTreeMap<&'static str, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("无法读取配置文件 {}：{e}", path.display()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        format!("配置文件 {} 格式有误：{}", path.display(), e.message())
    })?;
    let mut out = BTreeMap::new();
    for (section, v) in &table {
        let toml::Value::Table(t) = v else {
            return Err(format!(
                "配置文件中 {section} 应为一个小节（[{section}]），其下写各项设置"
            ));
        };
        for (name, v) in t {
            let key = format!("{section}.{name}");
            let Some(s) = SETTINGS.iter().find(|s| s.key == key) else {
                return Err(format!("配置文件中没有 {key} 这一项设置（请检查拼写）"));
            };
            let value = match v {
                toml::Value::String(x) => x.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("{key} 应为文字列表"))?
                    .join(","),
                _ => return Err(format!("{key} 的取值类型不对")),
            };
            check_value(s, &value)?;
            out.insert(s.key, value);
        }
    }
    Ok(out)
}

/// Whether `value` fits the setting; the message says what it should be.
pub fn check_value(s: &Setting, value: &str) -> Result<(), String> {
    let bad = |what: &str| {
        Err(format!(
            "{}（{}）应为{what}：{}",
            s.key,
            s.help,
            shown(s, value)
        ))
    };
    if value.is_empty() {
        return Ok(());
    }
    match s.kind {
        Kind::Text | Kind::Path => Ok(()),
        Kind::Int(lo, hi) => match value.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(()),
            _ => bad(&format!(" {lo} 到 {hi} 之间的整数")),
        },
        Kind::Bool => match value {
            "true" | "false" => Ok(()),
            _ => bad(" true 或 false"),
        },
        Kind::Addr => match value.parse::<std::net::SocketAddr>() {
            Ok(_) => Ok(()),
            Err(_) => bad("“地址:端口”，如 127.0.0.1:8080"),
        },
        Kind::IpList => {
            if value
                .split(',')
                .all(|x| x.trim().parse::<std::net::IpAddr>().is_ok())
            {
                Ok(())
            } else {
                bad(" IP 地址列表")
            }
        }
        Kind::Url => Ok(()),
        Kind::Profile => match value {
            "production" | "demo" => Ok(()),
            _ => bad(" production 或 demo"),
        },
    }
}

/// Fill in, from the file, the variables the environment does not set. Called first thing in
/// `main`, before any thread starts (so changing the environment is safe).
pub fn apply(path: &Path) -> Result<usize, String> {
    let values = read(path)?;
    let mut taken = HashSet::new();
    for (key, value) in values {
        let s = SETTINGS
            .iter()
            .find(|s| s.key == key)
            .expect("read checks keys");
        if std::env::var_os(s.env).is_none() {
            // SAFETY: called from `main` before the runtime or any other thread exists.
            unsafe { std::env::set_var(s.env, &value) };
            taken.insert(s.env);
        }
    }
    let n = taken.len();
    let _ = FROM_FILE.set((path.to_path_buf(), taken));
    Ok(n)
}

/// One setting as it is in effect for this process.
#[derive(Debug, serde::Serialize)]
pub struct Effective {
    pub key: &'static str,
    pub env: &'static str,
    /// Secrets are shown as "（已设置，不显示）".
    pub value: String,
    /// 命令行/环境变量, 配置文件 or 默认.
    pub source: &'static str,
    pub help: &'static str,
}

fn shown(s: &Setting, value: &str) -> String {
    if value.is_empty() {
        return String::new();
    }
    if s.secret {
        // A database URL keeps its host and name; only the password goes.
        if s.key == "database.url"
            && let Some((head, rest)) = value.split_once("://")
        {
            return match rest.split_once('@') {
                Some((cred, host)) if cred.contains(':') => {
                    let user = cred.split(':').next().unwrap_or("");
                    format!("{head}://{user}:***@{host}")
                }
                _ => value.to_string(),
            };
        }
        if s.key == "database.url" {
            return value.to_string();
        }
        return "（已设置，不显示）".into();
    }
    value.to_string()
}

pub fn effective() -> Vec<Effective> {
    let from_file = FROM_FILE.get().map(|f| &f.1);
    SETTINGS
        .iter()
        .map(|s| {
            let (value, source) = match std::env::var(s.env) {
                Ok(v) if from_file.is_some_and(|f| f.contains(s.env)) => (v, "配置文件"),
                Ok(v) => (v, "环境变量"),
                Err(_) => (s.default.to_string(), "默认"),
            };
            Effective {
                key: s.key,
                env: s.env,
                value: shown(s, &value),
                source,
                help: s.help,
            }
        })
        .collect()
}

pub fn file_in_use() -> Option<&'static Path> {
    FROM_FILE.get().map(|f| f.0.as_path())
}

fn raw(env: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| {
        SETTINGS
            .iter()
            .find(|s| s.env == env)
            .map(|s| s.default.to_string())
            .unwrap_or_default()
    })
}

fn is_local_host(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |x| x.1);
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |x| x.1);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.rsplit_once(':').map_or(host_port, |x| x.0),
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

fn private_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v) => v.is_loopback() || v.is_private() || v.is_link_local(),
        std::net::IpAddr::V6(v) => v.is_loopback() || (v.segments()[0] & 0xfe00) == 0xfc00,
    }
}

#[cfg(unix)]
fn mode_of(p: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}
#[cfg(not(unix))]
fn mode_of(_: &Path) -> Option<u32> {
    None
}

/// Settings that must not run in the production profile, each a sentence saying what to change.
/// Empty in the demo profile, where the console may run over plain HTTP on a laptop.
pub fn unsafe_settings() -> Vec<String> {
    let mut out = vec![];
    if raw("YIYANG_PROFILE") != "production" {
        return out;
    }
    if raw("YIYANG_SECURE_COOKIES") == "false" {
        out.push("server.secure_cookies = false：生产环境的 Cookie 必须只经 HTTPS 发送（由 nginx 提供 TLS，见 docs/deploy.md）".into());
    }
    let token = raw("YIYANG_METRICS_TOKEN");
    if !token.is_empty() && token.len() < 16 {
        out.push("metrics.token 少于 16 个字符：请换一个更长的随机令牌".into());
    }
    if let Ok(a) = raw("YIYANG_METRICS_LISTEN").parse::<std::net::SocketAddr>()
        && !private_ip(a.ip())
    {
        out.push(format!(
            "metrics.listen = {a}：运行指标不得对公网开放，请使用内网或本机地址"
        ));
    }
    let notify = raw("YIYANG_NOTIFY_URL");
    if notify.starts_with("http://") && !is_local_host(&notify) {
        out.push(
            "notify.url 使用明文 http 连接另一台机器：短信内容和令牌会以明文传输，请改用 https"
                .into(),
        );
    }
    let mqtt = raw("YIYANG_MQTT_URL");
    if mqtt.starts_with("mqtt://")
        && !is_local_host(&mqtt)
        && !raw("YIYANG_MQTT_PASSWORD").is_empty()
    {
        out.push("mqtt.url 使用明文 mqtt:// 连接另一台机器且带有密码：请改用 mqtts://".into());
    }
    let key = PathBuf::from(raw("YIYANG_KEY_FILE"));
    match mode_of(&key) {
        Some(m) if m & 0o077 != 0 => out.push(format!(
            "密钥文件 {} 的权限为 {m:o}：应为 600（chmod 600）",
            key.display()
        )),
        _ => {}
    }
    let db = raw("YIYANG_DATABASE_URL");
    if !db.starts_with("postgres") {
        let f = PathBuf::from(db.trim_start_matches("sqlite://"));
        if let Some(m) = mode_of(&f)
            && m & 0o077 != 0
        {
            out.push(format!(
                "数据库文件 {} 的权限为 {m:o}：应为 600",
                f.display()
            ));
        }
    }
    if let Some(f) = file_in_use()
        && let Some(m) = mode_of(f)
        && m & 0o077 != 0
    {
        let secrets = SETTINGS
            .iter()
            .filter(|s| s.secret && s.key != "database.url")
            .any(|s| FROM_FILE.get().is_some_and(|x| x.1.contains(s.env)))
            || db.contains('@');
        if secrets {
            out.push(format!(
                "配置文件 {} 含有密码或令牌，但其他用户可读（权限 {m:o}）：应为 600",
                f.display()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_has_its_own_variable_and_a_valid_default() {
        let mut envs = HashSet::new();
        for s in SETTINGS {
            assert!(envs.insert(s.env), "{} twice", s.env);
            assert!(check_value(s, s.default).is_ok(), "{}", s.key);
        }
    }

    #[test]
    fn the_file_is_checked_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("y.toml");
        std::fs::write(
            &p,
            "[server]\nlisten = \"0.0.0.0:8080\"\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.2\"]\n[database]\npool = 32\n",
        )
        .unwrap();
        let v = read(&p).unwrap();
        assert_eq!(v["server.trusted_proxies"], "127.0.0.1,10.0.0.2");
        assert_eq!(v["database.pool"], "32");
        std::fs::write(&p, "[server]\nlisen = \"x\"\n").unwrap();
        assert!(read(&p).unwrap_err().contains("server.lisen"));
        std::fs::write(&p, "[database]\npool = 0\n").unwrap();
        assert!(read(&p).unwrap_err().contains("1 到 512"));
        std::fs::write(&p, "[server]\nprofile = \"prod\"\n").unwrap();
        assert!(read(&p).unwrap_err().contains("production 或 demo"));
    }

    #[test]
    fn secrets_are_not_shown() {
        let url = SETTINGS.iter().find(|s| s.key == "database.url").unwrap();
        assert_eq!(
            shown(url, "postgres://yiyang:hunter2@db:5432/yiyang"),
            "postgres://yiyang:***@db:5432/yiyang"
        );
        let t = SETTINGS.iter().find(|s| s.key == "notify.token").unwrap();
        assert!(!shown(t, "abc").contains("abc"));
        assert!(is_local_host("http://127.0.0.1:9000/send"));
        assert!(!is_local_host("http://sms.example.cn/send"));
        assert!(is_local_host("mqtt://user:pw@localhost:1883"));
    }
}
