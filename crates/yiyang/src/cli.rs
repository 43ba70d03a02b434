//! The `yiyang` command line: serve, migrate, demo, import, export, user add, verify-audit, export-openapi.

use crate::app::{self, AppState, Config};
use crate::audit::Who;
use crate::identity::{Scope, Scopes};
use crate::platform::crypto::KeyRing;
use crate::platform::db::Db;
use crate::platform::migrations;
use crate::registry::import;
use clap::{Parser, Subcommand};
use sqlx::Row;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "yiyang", version, about = "颐养 · 养老服务管理平台")]
pub struct Cli {
    /// Database URL: a SQLite file path / sqlite:// URL, or postgres://…
    #[arg(
        long,
        global = true,
        env = "YIYANG_DATABASE_URL",
        default_value = "./data/yiyang.db"
    )]
    pub database: String,
    /// Key file for field encryption and blind indexes (created on first run). Keep it outside the database backups.
    #[arg(
        long,
        global = true,
        env = "YIYANG_KEY_FILE",
        default_value = "./data/yiyang.key"
    )]
    pub key_file: PathBuf,
    /// Where checkpoints of the audit chain's head are appended (`off`: nowhere; default:
    /// audit-checkpoints.log beside the key file, ./data/audit-checkpoints.log). Keep it on another
    /// disk or machine than the database if you can; `verify-audit` reads it.
    #[arg(
        long,
        global = true,
        env = "YIYANG_AUDIT_CHECKPOINTS",
        default_value = ""
    )]
    pub audit_checkpoints: String,
    /// The config file (yiyang.toml; default ./yiyang.toml when it exists). Flags and environment
    /// variables override what it says.
    #[arg(long, global = true, env = "YIYANG_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// The settings in effect (file, environment, defaults), secrets hidden
    Config {
        #[command(subcommand)]
        what: ConfigCmd,
    },
    /// Run the web server (migrates first)
    Serve {
        #[arg(long, env = "YIYANG_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// production: TOTP required for staff; demo: TOTP optional
        #[arg(long, env = "YIYANG_PROFILE", default_value = "production")]
        profile: String,
        /// Cookies only over HTTPS, and HSTS (default: on in production, off in demo). Turn it
        /// off only where the console is reached over plain HTTP on a closed network.
        #[arg(long, env = "YIYANG_SECURE_COOKIES")]
        secure_cookies: Option<bool>,
        /// Reverse proxies (comma-separated addresses) whose X-Forwarded-For names the client
        #[arg(long, env = "YIYANG_TRUSTED_PROXIES", value_delimiter = ',')]
        trusted_proxy: Vec<std::net::IpAddr>,
        /// The bureau's office telephone for the public pages (beside the 12349 hotline)
        #[arg(long, env = "YIYANG_OFFICE_PHONE")]
        office_phone: Option<String>,
        /// A second address serving /metrics without a token (and /healthz, /readyz), for a
        /// scraper on the private network; on the main address /metrics needs
        /// YIYANG_METRICS_TOKEN as a bearer token
        #[arg(long, env = "YIYANG_METRICS_LISTEN")]
        metrics_listen: Option<String>,
    },
    /// Apply database migrations
    Migrate,
    /// Fill the database with the synthetic demo county (如皋市-shaped) and demo accounts
    Demo {
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
    },
    /// Import data from a file
    Import {
        #[command(subcommand)]
        what: ImportWhat,
    },
    /// Export data to a file
    Export {
        #[command(subcommand)]
        what: ExportWhat,
    },
    /// Region tree maintenance
    Region {
        #[command(subcommand)]
        what: RegionCmd,
    },
    /// Manage accounts
    User {
        #[command(subcommand)]
        what: UserCmd,
    },
    /// Basic-service catalogue: evaluate eligibility over the registry, explain one person
    Catalog {
        #[command(subcommand)]
        what: CatalogCmd,
    },
    /// Public-bed admission queue (入住轮候)
    Admission {
        #[command(subcommand)]
        what: AdmissionCmd,
    },
    /// Home-visit services (居家上门服务): the monthly settlement of providers
    Homecare {
        #[command(subcommand)]
        what: HomecareCmd,
    },
    /// Call devices (呼叫设备): list them, give a vendor's gateway a token, simulate their messages
    Devices {
        #[command(subcommand)]
        what: DevicesCmd,
    },
    /// Emergency events (紧急呼叫): list what arrived
    Emergency {
        #[command(subcommand)]
        what: EmergencyCmd,
    },
    /// Indicators (重点指标): one value for scripts, rollup rebuild, target sheets
    Indicators {
        #[command(subcommand)]
        what: IndicatorCmd,
    },
    /// Check the audit chain (its keyed MACs, its head and the checkpoints kept outside the
    /// database); exits 1 and names the first broken row
    VerifyAudit,
    /// Copy the SQLite database while it is in use (consistent; writers go on); the key file is
    /// not in the copy and must be kept separately
    Backup {
        /// Default: backups/yiyang-YYYYMMDD-HHMMSS.db beside the database
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Put a backup in place as the database (which must not exist yet), then check it
    Restore { file: PathBuf },
    /// Verify a database without changing it: integrity, migrations, audit chain, rows per table
    Check {
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// Write a checkpoint of the audit chain's head now (serve writes one every 10 minutes)
    AuditCheckpoint,
    /// Print the OpenAPI document
    ExportOpenapi,
    /// Look for citizen IDs in clear in files or folders (database files, dumps, logs); exits 1
    /// and names where (masked) when any is found
    ScanClearIds { paths: Vec<PathBuf> },
    /// Write a synthetic registry file (CSV or XLSX by extension) for tests and benchmarks
    GenRegistryFile {
        out: PathBuf,
        #[arg(long, default_value_t = 1000)]
        rows: usize,
        /// How many of the rows are made invalid (spread through the file)
        #[arg(long, default_value_t = 0)]
        bad: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Spread the people over the synthetic province of `gen-province-regions`
        #[arg(long)]
        province: bool,
        /// An XLSX as a town office keeps it: a sheet per village, title rows, 序号, merged
        /// village codes, totals and signatures
        #[arg(long)]
        office: bool,
        /// How many rows carry another phone and living status than the same seed's file (a
        /// corrected file: its dry run shows what changes)
        #[arg(long, default_value_t = 0)]
        changed: usize,
    },
    /// Measure QUALITY.md's bare-stack import floor on this machine (`floor.rs`): SQLite in
    /// DIR/floor.db, PostgreSQL in the database at --postgres; prints label, rows and seconds
    #[command(hide = true)]
    BenchFloor {
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Add a synthetic province's region tree (12 cities, 72 counties, 12,960 villages) for
    /// benchmarks at province scale
    #[command(hide = true)]
    GenProvinceRegions,
    /// Add homes across every town of the database, with beds (about 70 % occupied by its
    /// elders), staff and leaves, for benchmarks at province scale
    #[command(hide = true)]
    GenInstitutions {
        #[arg(long, default_value_t = 5000)]
        facilities: usize,
        #[arg(long, default_value_t = 500_000)]
        beds: i64,
    },
    /// Add caregivers of the demo's first provider with accounts cg0001… (password from standard
    /// input) and one visit each today (the check-in bench)
    #[command(hide = true)]
    GenCaregivers {
        #[arg(long, default_value_t = 200)]
        count: usize,
    },
    /// Add `--count` call devices (serials BN000001…) on the active elders, a device each in turn
    /// (the emergency bench)
    #[command(hide = true)]
    GenDevices {
        #[arg(long, default_value_t = 10_000)]
        count: usize,
    },
    /// Add confirmed home visits for a month across the demo county's elders (the settlement
    /// bench): `--orders` visits and `--meals` meals in `--month` YYYY-MM
    #[command(hide = true)]
    GenVisits {
        #[arg(long)]
        month: String,
        #[arg(long, default_value_t = 1_500_000)]
        orders: usize,
        #[arg(long, default_value_t = 0)]
        meals: usize,
    },
    /// Write a test assessment file (CSV or XLSX by extension) for the people of a generated
    /// registry file (same --elders and --elder-seed as its --rows and --seed)
    GenAssessmentFile {
        out: PathBuf,
        #[arg(long, default_value_t = 1000)]
        elders: usize,
        #[arg(long, default_value_t = 7)]
        elder_seed: u64,
        /// Share of the 80+ assessed (younger people: a tenth of it)
        #[arg(long, default_value_t = 0.35)]
        share: f64,
        #[arg(long, default_value_t = 0)]
        bad: usize,
        #[arg(long, default_value_t = 11)]
        seed: u64,
        /// The people of a `gen-registry-file --province` file
        #[arg(long)]
        province: bool,
    },
}

#[derive(Subcommand)]
pub enum ImportWhat {
    /// Import the elder registry from CSV or XLSX
    Registry {
        file: PathBuf,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// Import ability assessments (GB/T 42195-2022 item scores, adopted LTC ratings, legacy MZ/T
    /// 039-2013 results) from CSV or XLSX
    Assessments {
        file: PathBuf,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value = "text")]
        format: String,
    },
}

#[derive(Subcommand)]
pub enum ExportWhat {
    /// Export the registry (masked IDs) to XLSX
    Registry {
        #[arg(long, default_value = "registry.xlsx")]
        out: PathBuf,
        /// Only this region's subtree
        #[arg(long)]
        region: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum IndicatorCmd {
    /// Print one indicator at one region and period: value, numerator, denominator, target
    Value {
        /// Indicator id, e.g. assessment_coverage_80
        id: String,
        #[arg(long)]
        region: String,
        /// YYYY or YYYY-MM
        #[arg(long)]
        period: String,
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// Recount every rollup from the records (otherwise the server refreshes them incrementally)
    Rebuild {
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// Bring the rollups up to date (incremental when possible), as the server does every minute
    Refresh,
    /// Import a target sheet shaped like the plans' tables (指标, year columns, 属性)
    ImportTargets {
        file: PathBuf,
        /// Region the targets belong to (unless the sheet has a 区划代码 column)
        #[arg(long)]
        region: String,
        /// The plan's title, kept with each target
        #[arg(long)]
        source: Option<String>,
        /// Unknown indicator names become local (hand-entered) indicators
        #[arg(long)]
        create_missing: bool,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
pub enum CatalogCmd {
    /// Run the published catalogues over the registry and apply the changes; prints per item the
    /// people eligible, granted, proposed and ended
    Evaluate {
        /// Only this region's catalogue (default: every published one)
        #[arg(long)]
        region: Option<String>,
        /// Evaluation date YYYY-MM-DD (default: today, China time)
        #[arg(long)]
        on: Option<String>,
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// Publish a catalogue from a JSON file (an array of items, as `show` prints them): opens the
    /// region's draft, replaces its items with the file's, and publishes it
    Publish {
        file: PathBuf,
        #[arg(long)]
        region: String,
        /// YYYY-MM-DD (default: today)
        #[arg(long)]
        effective_from: Option<String>,
    },
    /// Print the published items of a region's catalogue as JSON
    Show {
        #[arg(long)]
        region: String,
    },
    /// Read one citizen ID from standard input (never from the command line) and print, for every
    /// published item, whether it applies, the amount or quota, and why
    Explain {
        #[arg(long)]
        on: Option<String>,
        #[arg(long, default_value = "text")]
        format: String,
    },
}

#[derive(Subcommand)]
pub enum AdmissionCmd {
    /// Read applicants (a JSON list of {ref, birth_date, economic_status, ability_level,
    /// living_status, family_planning_special, entitled_veteran_family, applied_at}, codes or
    /// their Chinese names) from standard input and print them in queue order with tier and
    /// reasons, by the region's published policy or the default
    Rank {
        /// The region whose policy applies (a town follows its county's); default: the default
        #[arg(long)]
        region: Option<String>,
        /// Ranking date (age and ability on that day), YYYY-MM-DD; default today
        #[arg(long)]
        on: Option<String>,
        #[arg(long, default_value = "text")]
        format: String,
    },
}

#[derive(Subcommand)]
pub enum HomecareCmd {
    /// Settle a month: per provider the visits confirmed, at contract prices, anomalies held back,
    /// the payable split by funding level; recorded as drafts for an officer's approval unless
    /// --dry-run
    Settle {
        /// YYYY-MM
        #[arg(long)]
        month: String,
        /// One region (its subtree); default: everywhere
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value = "text")]
        format: String,
    },
}

#[derive(Subcommand)]
pub enum DevicesCmd {
    /// Every device: serial, kind, the elder's masked ID, last heartbeat, status
    List {
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// A token for a vendor's gateway (new, or replacing the old one): shown once
    Gateway { name: String },
    /// Publish heartbeats and now and then an alarm to the broker (YIYANG_MQTT_URL) as the
    /// registered devices would
    Simulate {
        /// Messages a second
        #[arg(long, default_value_t = 100)]
        rate: u32,
        /// How long (0: until stopped)
        #[arg(long, default_value_t = 0)]
        seconds: u64,
        /// One message in this many is an alarm (0: none)
        #[arg(long, default_value_t = 500)]
        alarm_every: u64,
    },
}

#[derive(Subcommand)]
pub enum EmergencyCmd {
    /// The events received (since a time): id, serial, type, status, received_at, acknowledged_at,
    /// duplicate_count
    Events {
        /// RFC 3339 time or YYYY-MM-DD
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value = "text")]
        format: String,
    },
}

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Print every setting with where it came from; exit 1 on an invalid value or, in the
    /// production profile, an unsafe one
    Check {
        #[arg(long, default_value = "text")]
        format: String,
    },
}

#[derive(Subcommand)]
pub enum RegionCmd {
    /// Load the 统计用区划代码 from CSV or XLSX files with code and name columns (the published
    /// tables as they are: provinces.csv, cities.csv, areas.csv, streets.csv, villages.csv)
    Import {
        files: Vec<PathBuf>,
        /// Keep one subtree and its ancestors (a county loads only itself), e.g. 320682
        #[arg(long)]
        under: Option<String>,
        /// Date the new codes take effect (YYYY-MM-DD)
        #[arg(long)]
        valid_from: Option<String>,
        /// Check and report, write nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Apply a code-change table (merged/split/renamed towns and villages) from a CSV file
    ApplyChanges { file: PathBuf },
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a named account; the password is read from standard input
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        display_name: Option<String>,
        /// system_admin, security_admin, audit_admin, officer, worker, assessor,
        /// institution_manager, dispatcher, caregiver (comma-separated)
        #[arg(long, default_value = "security_admin")]
        role: String,
        /// Region the account is bound to (12-digit or short code)
        #[arg(long)]
        region: String,
        /// Comma list of edit, aggregates, individuals
        #[arg(long, default_value = "edit,aggregates,individuals")]
        scopes: String,
        /// The organisation an institution_manager, dispatcher or caregiver works for (its id)
        #[arg(long)]
        org: Option<String>,
        /// A caregiver's staff record (its id)
        #[arg(long)]
        staff: Option<String>,
    },
    /// Disable an account: its sessions end at once
    Disable {
        username: String,
        #[arg(long)]
        reason: String,
    },
    /// Enable a disabled account
    Enable {
        username: String,
        #[arg(long)]
        reason: String,
    },
    /// Lift a lockout after failed logins
    Unlock {
        username: String,
        #[arg(long)]
        reason: String,
    },
    /// Set a new password (read from standard input) that the owner must change at the next login
    ResetPassword {
        username: String,
        #[arg(long)]
        reason: String,
    },
}

pub fn main() -> ExitCode {
    // The config file fills in the environment before the flags are read (flags > environment >
    // file > defaults); no thread exists yet.
    let args: Vec<String> = std::env::args().collect();
    if let Some(path) = crate::platform::config::locate(&args)
        && let Err(e) = crate::platform::config::apply(&path)
    {
        eprintln!("错误：{e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("YIYANG_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: a log file or journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("错误：{e:#}");
            ExitCode::from(2)
        }
    }
}

pub async fn open(cli: &Cli, max_conns: u32) -> anyhow::Result<(Db, KeyRing)> {
    let (db, keys) = open_keyed(cli, max_conns).await?;
    if let Some(n) = crate::audit::key_legacy_chain(&db).await? {
        tracing::warn!(
            rows = n,
            "audit chain keyed: rows written before were checked and chained again under the key"
        );
    }
    Ok((db, keys))
}

/// The database, migrated, with its key file (checked against the one it was created with).
async fn open_keyed(cli: &Cli, max_conns: u32) -> anyhow::Result<(Db, KeyRing)> {
    let db = Db::connect(&cli.database, max_conns).await?;
    migrations::migrate(&db).await?;
    let keys = KeyRing::load_or_create(&cli.key_file)?;
    check_key(&db, &keys).await?;
    db.use_keys(&keys);
    Ok((db, keys))
}

/// The first key used with a database is recorded (as a fingerprint); another key is refused.
async fn check_key(db: &Db, keys: &KeyRing) -> anyhow::Result<()> {
    let fp = keys.fingerprint();
    let row = sqlx::query("SELECT value FROM app_meta WHERE key = 'key_fingerprint'")
        .fetch_optional(&db.pool)
        .await?;
    match row {
        Some(r) if r.get::<String, _>(0) != fp => {
            anyhow::bail!("密钥文件与数据库不匹配：请使用创建该数据库时的密钥文件")
        }
        Some(_) => Ok(()),
        None => {
            sqlx::query("INSERT INTO app_meta (key, value) VALUES ('key_fingerprint', $1)")
                .bind(fp)
                .execute(&db.pool)
                .await?;
            Ok(())
        }
    }
}

fn cli_who() -> Who {
    let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    Who {
        actor_id: None,
        actor_name: format!("cli:{user}"),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.cmd {
        Cmd::Migrate => {
            let db = Db::connect(&cli.database, 2).await?;
            let applied = migrations::migrate(&db).await?;
            println!("已应用 {} 个迁移 {:?}", applied.len(), applied);
            // A fresh install gets its key file here, recorded with the database it belongs to.
            let created = !cli.key_file.exists();
            let keys = KeyRing::load_or_create(&cli.key_file)?;
            check_key(&db, &keys).await?;
            if created {
                println!(
                    "已创建密钥文件 {}：请立即另行保管一份（与数据库备份分开存放），没有它加密的身份证号和电话无法读取",
                    cli.key_file.display()
                );
            }
        }
        Cmd::ExportOpenapi => println!("{}", app::openapi_json()),
        Cmd::ScanClearIds { paths } => {
            let found = crate::platform::crypto::scan_clear_ids(paths)?;
            for line in found.iter().take(20) {
                println!("{line}");
            }
            println!("{} 个明文身份证号", found.len());
            if !found.is_empty() {
                std::process::exit(1);
            }
        }
        Cmd::GenRegistryFile {
            out,
            rows,
            bad,
            seed,
            province,
            office,
            changed,
        } => {
            let n = crate::demo::write_registry_file(
                out, *rows, *bad, *seed, *province, *office, *changed,
            )?;
            println!("已写入 {n} 行到 {}", out.display());
        }
        Cmd::BenchFloor {
            dir,
            rows,
            postgres,
        } => {
            let csv = dir.join("floor.csv");
            crate::floor::write_csv(&csv, *rows)?;
            let line = |engine: &str, f: crate::floor::Floor| {
                println!("{engine} floor load\t{}\t{:.2}", f.rows, f.load);
                println!(
                    "{engine} floor load+2 indexes\t{}\t{:.2}",
                    f.rows, f.with_indexes
                );
            };
            line("sqlite", crate::floor::sqlite(&dir.join("floor.db"), &csv)?);
            if let Some(url) = postgres {
                line("postgres", crate::floor::postgres(url, &csv).await?);
            }
        }
        Cmd::GenProvinceRegions => {
            let (db, _keys) = open(&cli, 2).await?;
            crate::demo::ensure_regions(&db).await?;
            let r = crate::demo::province_regions();
            crate::region::upsert(&db, &r).await?;
            println!("已添加模拟省区划 {} 个节点", r.len());
        }
        Cmd::GenCaregivers { count } => {
            let (db, _keys) = open(&cli, 2).await?;
            let mut pw = String::new();
            std::io::stdin().read_to_string(&mut pw)?;
            let p = crate::home_service::demo::gen_caregivers(&db, *count, pw.trim()).await?;
            println!("已添加 {count} 名护理员及其账号（机构 {p}），每人今天一单");
        }
        Cmd::GenVisits {
            month,
            orders,
            meals,
        } => {
            let (db, _keys) = open(&cli, 2).await?;
            let first = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
                .map_err(|_| anyhow::anyhow!("--month 应为 YYYY-MM"))?;
            let (n, c) = crate::home_service::demo::gen_month(&db, first, *orders).await?;
            let m = crate::home_service::demo::gen_meals(&db, first, *meals).await?;
            println!("已添加 {n} 条已确认的上门服务（新增护理员 {c} 人）、{m} 份助餐");
        }
        Cmd::GenInstitutions { facilities, beds } => {
            let (db, _keys) = open(&cli, 2).await?;
            let (n, b, r) = crate::institution::demo::seed_towns(
                &db,
                *facilities,
                *beds,
                crate::platform::today(),
            )
            .await?;
            println!("已添加 {n} 家机构、{b} 张床位、{r} 位入住老人");
        }
        Cmd::GenDevices { count } => {
            let (db, _keys) = open(&cli, 2).await?;
            let n = crate::emergency::demo::gen_devices(&db, *count).await?;
            println!("已添加 {n} 台呼叫设备");
        }
        Cmd::GenAssessmentFile {
            out,
            elders,
            elder_seed,
            share,
            bad,
            seed,
            province,
        } => {
            let n = crate::demo::write_assessment_file(
                out,
                *elders,
                *elder_seed,
                *share,
                *bad,
                *seed,
                *province,
            )?;
            println!("已写入 {n} 行到 {}", out.display());
        }
        Cmd::Serve {
            listen,
            profile,
            secure_cookies,
            trusted_proxy,
            office_phone,
            metrics_listen,
        } => {
            if profile != "production" && profile != "demo" {
                anyhow::bail!("--profile 只能是 production 或 demo");
            }
            let (db, keys) = open(
                &cli,
                std::env::var("YIYANG_POOL")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(16),
            )
            .await?;
            let n = import::mark_interrupted(&db).await?;
            if n > 0 {
                tracing::warn!(jobs = n, "marked interrupted import jobs as failed");
            }
            let config = Config {
                profile: profile.clone(),
                secure_cookies: secure_cookies.unwrap_or(profile == "production"),
                trusted_proxies: trusted_proxy.clone(),
                office_phone: office_phone.clone(),
                metrics_token: std::env::var("YIYANG_METRICS_TOKEN").ok(),
                files_dir: files_dir(&cli),
                ..Config::default().with_env()
            };
            if config.metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
                anyhow::bail!("YIYANG_METRICS_TOKEN 至少 16 个字符");
            }
            // The same list `config check` refuses; serve starts (a closed network may want
            // plain HTTP) but says so.
            for m in crate::platform::config::unsafe_settings() {
                tracing::warn!("{m}");
            }
            let state = AppState::new(db, keys, config).await?;
            // A checkpoint of the audit head now and every 10 minutes while it moves.
            crate::audit::checkpoint::start(
                state.db.clone(),
                checkpoint_sink(&cli),
                std::time::Duration::from_secs(600),
            );
            match crate::platform::outbox::Gateway::from_env() {
                Some(gw) => {
                    tracing::info!(url = %gw.url, "notifications go to the gateway");
                    crate::platform::outbox::start(state.db.clone(), state.keys.clone(), gw);
                }
                None => {
                    tracing::info!("YIYANG_NOTIFY_URL not set: notifications wait in the outbox")
                }
            }
            crate::region::follow_changes(
                state.db.clone(),
                state.regions.clone(),
                std::time::Duration::from_secs(5),
            );
            crate::indicator::rollup::keep_fresh(
                state.db.clone(),
                std::time::Duration::from_secs(30),
            );
            // Care plans place their coming week's visits.
            crate::home_service::plan::keep_made(state.db.clone());
            // Who must be visited how often, worked out every hour and when the rules change.
            crate::care_visit::duty::keep_current(state.db.clone());
            // Device messages from the county's broker (YIYANG_MQTT_URL; `off` for none).
            match crate::emergency::mqtt::Broker::from_env()? {
                Some(b) => {
                    tracing::info!(broker = %b.url(), "device messages from the MQTT broker");
                    let id = std::env::var("YIYANG_MQTT_CLIENT_ID")
                        .unwrap_or_else(|_| "yiyang-server".into());
                    crate::emergency::mqtt::start(
                        state.db.clone(),
                        state.emergency.clone(),
                        b,
                        id,
                    )?;
                }
                None => tracing::info!("YIYANG_MQTT_URL=off: no device messages over MQTT"),
            }
            // Events past their clocks go to the supervisors.
            crate::emergency::sla::keep_watch(state.db.clone(), state.emergency.clone());
            // Phones written before their blind index existed become findable.
            let fill = state.clone();
            tokio::spawn(async move {
                match crate::registry::backfill_phone_index(&fill.db, &fill.keys).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "phone blind index filled"),
                    Err(e) => tracing::error!(error = %e, "phone blind index fill failed"),
                }
            });
            // Build the search index now rather than on the first search.
            let warm = state.clone();
            tokio::spawn(async move {
                if let Err(e) = warm.search_index.refresh(&warm.db).await {
                    tracing::error!(error = %e, "search index build failed");
                }
            });
            if let Some(addr) = metrics_listen {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("无法监听指标地址 {addr}：{e}"))?;
                let private = crate::ops::private_router(state.clone());
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(l, private).await {
                        tracing::error!(error = %e, "metrics listener stopped");
                    }
                });
                println!("运行指标：http://{addr}/metrics");
            }
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!("颐养已启动：http://{listen}/  （配置：{profile}）");
            axum::serve(
                listener,
                app::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        }
        Cmd::Demo { scale } => {
            let (db, keys) = open(&cli, 4).await?;
            let existing: i64 = sqlx::query("SELECT COUNT(*) FROM elder")
                .fetch_one(&db.pool)
                .await?
                .get(0);
            if existing > 0 {
                println!(
                    "数据库中已有 {existing} 位老年人档案，保留现有数据，不再生成（--scale {scale} 不起作用）。\
                     要换一个规模，请先删除数据目录（默认 ./data）再运行。"
                );
            } else {
                let t = std::time::Instant::now();
                let n = crate::demo::build(&db, &keys, *scale).await?;
                println!(
                    "已生成演示县（如皋市，虚构人员）：{n} 位老年人，用时 {:.1} 秒",
                    t.elapsed().as_secs_f64()
                );
            }
            crate::demo::ensure_regions(&db).await?;
            let targets: i64 = sqlx::query("SELECT COUNT(*) FROM indicator_target")
                .fetch_one(&db.pool)
                .await?
                .get(0);
            if targets == 0 {
                let n = crate::indicator::targets::seed_demo(
                    &db,
                    crate::demo::COUNTY,
                    crate::demo::CITY,
                )
                .await
                .map_err(api_err)?;
                println!(
                    "已录入演示目标：如皋市 2025 年、演示市（宿迁市 2020–2022 年目标表）共 {n} 条"
                );
            }
            let r = crate::indicator::rollup::refresh(&db, crate::platform::today(), true)
                .await
                .map_err(api_err)?;
            println!(
                "指标汇总已生成：{} 行，用时 {} 毫秒",
                r.rows_written, r.millis
            );
            demo_accounts(&db, &cli).await?;
            db.checkpoint_now().await?;
        }
        Cmd::Import { what } => {
            let (kind, file, dry_run, format) = match what {
                ImportWhat::Registry {
                    file,
                    dry_run,
                    format,
                } => ("registry", file, dry_run, format),
                ImportWhat::Assessments {
                    file,
                    dry_run,
                    format,
                } => ("assessment", file, dry_run, format),
            };
            let (db, keys) = open(&cli, 4).await?;
            let regions = crate::region::RegionIndex::load(&db).await?;
            let bytes =
                std::fs::read(file).map_err(|e| anyhow::anyhow!("无法读取文件 {file:?}：{e}"))?;
            let name = file
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let scope = Scope::all();
            let who = cli_who();
            let ctx = import::Ctx {
                db: &db,
                keys: &keys,
                regions: &regions,
                scope: &scope,
                who: &who,
                progress: Arc::new(import::Progress::default()),
            };
            let t = std::time::Instant::now();
            let job = uuid::Uuid::now_v7().to_string();
            let outcome = if kind == "registry" {
                import::run_job(&ctx, &job, None, bytes, &name, *dry_run).await
            } else {
                crate::assessment::import::run_job(&ctx, &job, None, bytes, &name, *dry_run).await
            };
            let s = match outcome {
                Ok(s) => s,
                Err(import::ImportError::File(msg)) => {
                    if format == "json" {
                        println!("{}", serde_json::json!({"error": msg}));
                    } else {
                        eprintln!("导入失败：{msg}");
                    }
                    return Ok(ExitCode::from(1));
                }
                Err(e) => return Err(e.into()),
            };
            let secs = t.elapsed().as_secs_f64();
            // Leave the database file complete for whoever opens it next (counted in the
            // process's wall time, not in `seconds`, which ends at the commit).
            db.checkpoint_now().await?;
            if format == "json" {
                let mut v = serde_json::to_value(&s)?;
                v["job_id"] = job.into();
                v["seconds"] = secs.into();
                v["errors"] = serde_json::to_value(
                    import::error_list(&db, v["job_id"].as_str().unwrap_or_default()).await?,
                )?;
                println!("{v}");
            } else {
                println!(
                    "{}：共 {} 行，可导入 {}，错误 {}；新增 {}，更新 {}，未变化 {}（{:.2} 秒，{:.0} 行/秒）",
                    if *dry_run {
                        "预检完成（未写入）"
                    } else {
                        "导入完成"
                    },
                    s.total,
                    s.accepted,
                    s.rejected,
                    s.inserted,
                    s.updated,
                    s.unchanged,
                    secs,
                    s.total as f64 / secs.max(1e-9)
                );
                if let Some(l) = &s.layout {
                    if l.sheets.len() > 1 || !l.other_sheets.is_empty() {
                        for sh in &l.sheets {
                            println!(
                                "  工作表“{}”：表头在第 {} 行，{} 行数据",
                                sh.name, sh.header_row, sh.rows
                            );
                        }
                        for o in &l.other_sheets {
                            println!("  工作表“{o}”：没有导入所需的表头，未读取");
                        }
                    }
                    if l.skipped.len() > 20 {
                        println!(
                            "  跳过 {} 行合计、说明或签名行（以下为前 20 行）",
                            l.skipped.len()
                        );
                    }
                    for k in l.skipped.iter().take(20) {
                        let at = if k.sheet.is_empty() {
                            String::new()
                        } else {
                            format!("工作表“{}”", k.sheet)
                        };
                        println!("  跳过{at}第 {} 行（{}）", k.row, k.reason);
                    }
                }
                for e in s.errors.iter().take(20) {
                    println!("  第 {} 行：{}", e.row, e.reason);
                }
            }
        }
        Cmd::Export {
            what: ExportWhat::Registry { out, region },
        } => {
            let (db, keys) = open(&cli, 4).await?;
            let state = AppState::new(db.clone(), keys.clone(), Config::default()).await?;
            let scope = match region {
                Some(r) => Scope::of(
                    &yiyang_kernel::RegionCode::parse(r).map_err(|e| anyhow::anyhow!("{e}"))?,
                ),
                None => Scope::all(),
            };
            let regions = state.regions.read().await.clone();
            let (bytes, n) =
                crate::registry::export_xlsx(&state, &scope, &regions, &Default::default(), false)
                    .await
                    .map_err(api_err)?;
            std::fs::write(out, bytes)?;
            let mut tx = db.begin().await?;
            crate::audit::append(
                &mut tx,
                &cli_who(),
                crate::audit::Entry {
                    action: "registry.export",
                    entity: "elder",
                    entity_id: None,
                    region_code: region.as_deref(),
                    detail: serde_json::json!({"rows": n, "revealed": false}).to_string(),
                },
            )
            .await?;
            tx.commit().await?;
            println!("已导出 {n} 行到 {}（身份证号已脱敏）", out.display());
        }
        Cmd::User {
            what:
                UserCmd::Add {
                    username,
                    display_name,
                    role,
                    region,
                    scopes,
                    org,
                    staff,
                },
        } => {
            let (db, _keys) = open(&cli, 2).await?;
            let mut pw = String::new();
            std::io::stdin().read_to_string(&mut pw)?;
            let pw = pw.lines().next().unwrap_or("").to_string();
            let sc = Scopes {
                edit: scopes.contains("edit"),
                aggregates: scopes.contains("aggregates"),
                individuals: scopes.contains("individuals"),
            };
            let u = crate::identity::http::NewUser {
                username: username.clone(),
                display_name: display_name.clone().unwrap_or_else(|| username.clone()),
                password: pw,
                roles: role.split(',').map(|s| s.trim().to_string()).collect(),
                region_code: region.clone(),
                scopes: sc,
                org_id: org.clone(),
                staff_id: staff.clone(),
            };
            let mut tx = db.begin().await?;
            // Whoever typed the password hands the account over: it is changed at the first login.
            match crate::identity::http::insert_user(&db, &mut tx, &cli_who(), &u, None, true).await
            {
                Ok(id) => {
                    tx.commit().await?;
                    println!("已创建用户 {username}（{id}）");
                }
                Err(e) => {
                    eprintln!("创建用户失败：{}", e.detail);
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Cmd::User { what } => return user_cmd(&cli, what).await,
        Cmd::Region {
            what:
                RegionCmd::Import {
                    files,
                    under,
                    valid_from,
                    dry_run,
                },
        } => {
            return region_import(
                &cli,
                files,
                under.as_deref(),
                valid_from.as_deref(),
                *dry_run,
            )
            .await;
        }
        Cmd::Region {
            what: RegionCmd::ApplyChanges { file },
        } => {
            let (db, _keys) = open(&cli, 2).await?;
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("无法读取 {file:?}：{e}"))?;
            let changes = crate::region::parse_changes_csv(&text)?;
            let r = crate::region::apply_changes(&db, &cli_who(), &changes).await?;
            println!(
                "已应用 {} 条区划变更：新建区划 {}，改码老年人 {}，改码账号 {}",
                r.changes, r.regions_created, r.elders_recoded, r.users_recoded
            );
        }
        Cmd::Catalog { what } => return catalog_cmd(&cli, what).await,
        Cmd::Admission {
            what: AdmissionCmd::Rank { region, on, format },
        } => return admission_rank(&cli, region.as_deref(), on, format).await,
        Cmd::Homecare {
            what:
                HomecareCmd::Settle {
                    month,
                    region,
                    dry_run,
                    format,
                },
        } => return homecare_settle(&cli, month, region.as_deref(), *dry_run, format).await,
        Cmd::Indicators { what } => return indicator_cmd(&cli, what).await,
        Cmd::Devices { what } => devices_cmd(&cli, what).await?,
        Cmd::Emergency { what } => emergency_cmd(&cli, what).await?,
        Cmd::AuditCheckpoint => {
            let (db, _keys) = open(&cli, 2).await?;
            let sink = checkpoint_sink(&cli);
            if sink.file.is_none() && sink.gateway.is_none() {
                anyhow::bail!(
                    "未设置审计检查点的去处（--audit-checkpoints 或 YIYANG_AUDIT_CHECKPOINT_NOTIFY）"
                );
            }
            let c = crate::audit::checkpoint::take(&db, &sink).await?;
            println!("已写入审计检查点：seq {}，{}", c.seq, c.at);
        }
        Cmd::Config {
            what: ConfigCmd::Check { format },
        } => return Ok(config_check(format)),
        Cmd::Backup { out } => {
            let db = Db::connect(&cli.database, 1).await?;
            let Some(file) = db.sqlite_file().map(PathBuf::from) else {
                anyhow::bail!(
                    "yiyang backup 只用于 SQLite 数据库；PostgreSQL 请用 pg_dump（见 docs/deploy.md）"
                );
            };
            let out = out
                .clone()
                .unwrap_or_else(|| crate::backup::default_out(&file));
            let c = crate::backup::backup(&db, &out).await?;
            println!(
                "已备份到 {}（{:.1} MB，用时 {:.2} 秒）",
                c.path.display(),
                c.bytes as f64 / 1e6,
                c.millis as f64 / 1e3
            );
            println!(
                "注意：密钥文件 {} 不在备份中。请把它另行保管在与备份不同的地方；没有它，备份中加密的身份证号和电话无法读取。",
                cli.key_file.display()
            );
        }
        Cmd::Restore { file } => {
            if cli.database.starts_with("postgres") {
                anyhow::bail!(
                    "PostgreSQL 请用 pg_restore 恢复（见 docs/deploy.md），再运行 yiyang check"
                );
            }
            let target = PathBuf::from(cli.database.trim_start_matches("sqlite://"));
            let c = crate::backup::restore(file, &target)?;
            println!(
                "已恢复到 {}（{:.1} MB，用时 {:.2} 秒）",
                c.path.display(),
                c.bytes as f64 / 1e6,
                c.millis as f64 / 1e3
            );
            if !cli.key_file.exists() {
                println!(
                    "密钥文件 {} 不存在：请把备份时另行保管的密钥文件放到这里，再运行 yiyang check。",
                    cli.key_file.display()
                );
                return Ok(ExitCode::from(1));
            }
            return check_cmd(&cli, "text").await;
        }
        Cmd::Check { format } => return check_cmd(&cli, format).await,
        Cmd::VerifyAudit => {
            let (db, _keys) = open_keyed(&cli, 2).await?;
            let sink = checkpoint_sink(&cli);
            let checkpoints = match &sink.file {
                Some(f) => crate::audit::checkpoint::read(f, &db.chain_key()?)?,
                None => vec![],
            };
            let r = crate::audit::verify(&db, &checkpoints).await?;
            if r.ok {
                println!(
                    "审计链完整：{} 条记录校验通过，与 {} 个检查点一致",
                    r.rows, r.checkpoints
                );
            } else {
                println!(
                    "审计链校验失败：{}（第一条异常记录：seq {}）",
                    r.problem.unwrap_or_default(),
                    r.first_broken_seq.unwrap_or(0)
                );
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Demo accounts with random passwords, printed once and kept in a 0600 file beside the database.
/// `yiyang config check`: the settings in effect for this environment and file.
fn config_check(format: &str) -> ExitCode {
    use crate::platform::config;
    let eff = config::effective();
    let invalid: Vec<String> = config::SETTINGS
        .iter()
        .filter_map(|s| {
            let v = std::env::var(s.env).ok()?;
            config::check_value(s, &v).err()
        })
        .collect();
    let unsafe_ = config::unsafe_settings();
    if format == "json" {
        println!(
            "{}",
            serde_json::json!({
                "file": config::file_in_use().map(|p| p.display().to_string()),
                "settings": eff, "invalid": invalid, "unsafe": unsafe_,
            })
        );
    } else {
        match config::file_in_use() {
            Some(p) => println!("配置文件：{}", p.display()),
            None => println!("配置文件：无（只用环境变量和默认值）"),
        }
        for e in &eff {
            let v = if e.value.is_empty() {
                "（空）"
            } else {
                e.value.as_str()
            };
            println!("  {:<28} {:<40} {}  # {}", e.key, v, e.source, e.help);
        }
        for m in &invalid {
            println!("取值有误：{m}");
        }
        for m in &unsafe_ {
            println!("不安全（production）：{m}");
        }
        if invalid.is_empty() && unsafe_.is_empty() {
            println!("检查通过");
        }
    }
    if invalid.is_empty() && unsafe_.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `yiyang check`: the database as it is (no migration), with its key file and checkpoints.
async fn check_cmd(cli: &Cli, format: &str) -> anyhow::Result<ExitCode> {
    let file = cli.database.trim_start_matches("sqlite://");
    if !cli.database.starts_with("postgres") && !std::path::Path::new(file).exists() {
        anyhow::bail!("数据库文件 {file} 不存在");
    }
    let db = Db::connect(&cli.database, 2).await?;
    if !cli.key_file.exists() {
        anyhow::bail!(
            "密钥文件 {} 不存在：审计链需用它校验",
            cli.key_file.display()
        );
    }
    let keys = KeyRing::load_or_create(&cli.key_file)?;
    let fp: Option<String> =
        sqlx::query("SELECT value FROM app_meta WHERE key = 'key_fingerprint'")
            .fetch_optional(&db.pool)
            .await
            .ok()
            .flatten()
            .map(|r| r.get(0));
    if fp.is_some_and(|f| f != keys.fingerprint()) {
        anyhow::bail!("密钥文件与数据库不匹配：请使用创建该数据库时的密钥文件");
    }
    db.use_keys(&keys);
    let sink = checkpoint_sink(cli);
    let checkpoints = match &sink.file {
        Some(f) if std::path::Path::new(f).exists() => {
            crate::audit::checkpoint::read(f, &db.chain_key()?)?
        }
        _ => vec![],
    };
    let r = crate::backup::check(&db, &checkpoints).await?;
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let mark = |ok: bool| if ok { "通过" } else { "失败" };
        println!(
            "数据库检查（{}，用时 {:.1} 秒）",
            r.backend,
            r.millis as f64 / 1e3
        );
        println!("  完整性：{}（{}）", mark(r.integrity_ok), r.integrity);
        println!(
            "  迁移：{}（缺少 {:?}，未知 {:?}）",
            mark(r.migrations_missing.is_empty() && r.migrations_unknown.is_empty()),
            r.migrations_missing,
            r.migrations_unknown
        );
        println!(
            "  审计链：{}（{} 条记录，{} 个检查点{}）",
            mark(r.audit.ok),
            r.audit.rows,
            r.audit.checkpoints,
            r.audit
                .problem
                .as_deref()
                .map(|p| format!("；{p}"))
                .unwrap_or_default()
        );
        println!("  各表行数：");
        for (t, n) in &r.tables {
            println!("    {t:<32} {n}");
        }
    }
    Ok(if r.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn region_import(
    cli: &Cli,
    files: &[PathBuf],
    under: Option<&str>,
    valid_from: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    if files.is_empty() {
        anyhow::bail!("请给出区划代码表文件（CSV 或 XLSX，含 code、name 两列）");
    }
    let under = under
        .map(|u| {
            yiyang_kernel::RegionCode::parse(u).map_err(|e| anyhow::anyhow!("--under {u}：{e}"))
        })
        .transpose()?;
    if let Some(d) = valid_from {
        chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| anyhow::anyhow!("--valid-from 应为 YYYY-MM-DD：{d}"))?;
    }
    let t0 = std::time::Instant::now();
    let mut rows = vec![];
    let mut names = vec![];
    for f in files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let bytes = std::fs::read(f).map_err(|e| anyhow::anyhow!("无法读取 {f:?}：{e}"))?;
        rows.extend(
            crate::region::import::read_rows(bytes, &name).map_err(|e| anyhow::anyhow!(e))?,
        );
        names.push(name);
    }
    let (db, _keys) = open(cli, 2).await?;
    let rep = crate::region::import::run(
        &db,
        &cli_who(),
        rows,
        under.as_ref(),
        valid_from,
        dry_run,
        &names,
    )
    .await?;
    let verb = if dry_run { "将" } else { "已" };
    println!(
        "读取 {} 行（范围以外 {}）：{verb}新增 {}，{verb}更名 {}，未变化 {}，有误 {}（{:.1} 秒）",
        rep.rows,
        rep.outside,
        rep.added,
        rep.renamed.len(),
        rep.unchanged,
        rep.rejected.len(),
        t0.elapsed().as_secs_f64()
    );
    for r in rep.renamed.iter().take(50) {
        println!("  更名 {}：{} → {}", r.code, r.old, r.new);
    }
    for p in rep.rejected.iter().take(50) {
        println!("  {} 第 {} 行：{}", p.file, p.row, p.reason);
    }
    if rep.rejected.len() > 50 {
        println!("  ……另有 {} 行有误", rep.rejected.len() - 50);
    }
    if !rep.absent.is_empty() {
        println!(
            "本系统中有 {} 个区划不在此表中（未作改动）；若已撤并或改码，请用 yiyang region apply-changes 登记新旧代码的对应：",
            rep.absent.len()
        );
        for r in rep.absent.iter().take(50) {
            println!("  {} {}", r.code, r.name);
        }
    }
    if dry_run {
        println!("试导入：未写入任何数据");
    }
    Ok(if rep.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

async fn demo_accounts(db: &Db, cli: &Cli) -> anyhow::Result<()> {
    let accounts: [(&str, &str, &str, &str, &str); 14] = [
        (
            "officer",
            "县民政局 李科长",
            "officer",
            crate::demo::COUNTY,
            "edit,aggregates,individuals",
        ),
        // A second person at the bureau: reviews what the first one makes (payment batches).
        (
            "reviewer",
            "县民政局 吴会计",
            "officer",
            crate::demo::COUNTY,
            "edit,aggregates,individuals",
        ),
        (
            "city_officer",
            "市民政局 陈处长",
            "officer",
            crate::demo::CITY,
            "aggregates,individuals",
        ),
        (
            "town_worker",
            "东陈镇 王社工",
            "worker",
            "320682103000",
            "edit,aggregates,individuals",
        ),
        // A village worker (网格员) of the 东陈镇 village with the most visit duties: hers on a phone.
        (
            "village_worker",
            "网格员 钱网格",
            "worker",
            "320682103000",
            "edit,individuals",
        ),
        (
            "assessor",
            "评估机构 赵评估",
            "assessor",
            crate::demo::COUNTY,
            "individuals",
        ),
        (
            "auditor",
            "审计管理员 周审计",
            "audit_admin",
            crate::demo::COUNTY,
            "aggregates",
        ),
        (
            "security",
            "安全管理员 钱安全",
            "security_admin",
            crate::demo::COUNTY,
            "aggregates",
        ),
        (
            "sysadmin",
            "系统管理员 孙系统",
            "system_admin",
            crate::demo::COUNTY,
            "",
        ),
        // The manager of a publicly built, privately run centre: her account sees that home only.
        (
            "home_manager",
            "石庄镇区域性养老服务中心 刘主任",
            "institution_manager",
            crate::demo::COUNTY,
            "edit,individuals",
        ),
        // A provider's dispatcher and one of its caregivers (today's visits are hers).
        (
            "dispatcher",
            "居家养老服务中心 陈调度",
            "dispatcher",
            crate::demo::COUNTY,
            "edit,individuals",
        ),
        (
            "caregiver",
            "护理员",
            "caregiver",
            crate::demo::COUNTY,
            "edit,individuals",
        ),
        // The 12349 line's operator: the board of alarms and calls of the county.
        (
            "operator",
            "12349 坐席 何坐席",
            "operator",
            crate::demo::COUNTY,
            "edit,individuals",
        ),
        // A meal point's counter (the first meal point with a meal price).
        (
            "meal",
            "助餐点 登记员",
            "meal_counter",
            crate::demo::COUNTY,
            "edit",
        ),
    ];
    // The demo's first provider (by town) with visits today, and the caregiver they went to.
    let bound: Option<(String, String, String, String)> = sqlx::query(
        "SELECT p.id, p.name, s.id, s.name FROM service_order o JOIN organisation p ON p.id = o.provider_id \
         JOIN staff s ON s.id = o.caregiver_id WHERE o.state = 'dispatched' \
         ORDER BY p.region_code, o.start_min LIMIT 1",
    )
    .fetch_optional(&db.pool)
    .await?
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)));
    let dir = cli
        .key_file
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let file = dir.join("demo-accounts.txt");
    let mut lines = vec![];
    for (u, name, role, region, scopes) in accounts {
        let exists = sqlx::query("SELECT 1 FROM app_user WHERE username = $1")
            .bind(u)
            .fetch_optional(&db.pool)
            .await?
            .is_some();
        if exists {
            continue;
        }
        let (mut name, mut staff_id) = (name.to_string(), None);
        let mut region = region.to_string();
        if u == "village_worker" {
            let village: Option<String> = sqlx::query_scalar(
                "SELECT e.residence_region FROM visit_duty d JOIN elder e ON e.id = d.elder_id \
                 WHERE d.ended_on IS NULL AND e.residence_region BETWEEN '320682103000' AND '320682103999' \
                 GROUP BY e.residence_region ORDER BY COUNT(*) DESC, e.residence_region LIMIT 1",
            )
            .fetch_optional(&db.pool)
            .await?;
            match village {
                Some(v) => region = v,
                None => continue,
            }
        }
        let org_id = if role == "dispatcher" || role == "caregiver" {
            let Some((p, pname, c, cname)) = &bound else {
                continue;
            };
            if role == "caregiver" {
                name = format!("{pname} 护理员 {cname}");
                staff_id = Some(c.clone());
            } else {
                name = name.replace("居家养老服务中心", pname);
            }
            Some(p.clone())
        } else if role == "meal_counter" {
            let point: Option<(String, String)> = sqlx::query(
                "SELECT o.id, o.name FROM organisation o JOIN provider_price p ON p.org_id = o.id \
                 WHERE o.kind = 'meal_point' AND p.service = 'meal' ORDER BY o.id LIMIT 1",
            )
            .fetch_optional(&db.pool)
            .await?
            .map(|r| (r.get(0), r.get(1)));
            match point {
                Some((id, pname)) => {
                    name = format!("{pname} 登记员");
                    Some(id)
                }
                None => continue,
            }
        } else if role == "institution_manager" {
            let home: Option<String> = sqlx::query_scalar(
                "SELECT id FROM organisation WHERE name = '石庄镇区域性养老服务中心' ORDER BY id LIMIT 1",
            )
            .fetch_optional(&db.pool)
            .await?;
            match home {
                Some(h) => Some(h),
                None => continue,
            }
        } else {
            None
        };
        let pw = format!("Yy-{}", crate::platform::crypto::random_token(9));
        let nu = crate::identity::http::NewUser {
            username: u.into(),
            display_name: name.clone(),
            password: pw.clone(),
            roles: vec![role.into()],
            region_code: region.clone(),
            scopes: Scopes {
                edit: scopes.contains("edit"),
                aggregates: scopes.contains("aggregates"),
                individuals: scopes.contains("individuals"),
            },
            org_id,
            staff_id,
        };
        let mut tx = db.begin().await?;
        crate::identity::http::insert_user(
            db,
            &mut tx,
            &Who {
                actor_id: None,
                actor_name: "yiyang demo".into(),
            },
            &nu,
            None,
            // The demo's accounts are for trying it out: their passwords are printed for that.
            false,
        )
        .await
        .map_err(api_err)?;
        if u == "village_worker" {
            // Her village's elders are hers to visit.
            sqlx::query(
                "INSERT INTO visit_area (region_code, user_id, assigned_by, assigned_at) \
                 SELECT region_code, id, 'yiyang demo', $2 FROM app_user WHERE username = $1",
            )
            .bind(u)
            .bind(crate::platform::now_rfc3339())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        lines.push(format!("{u}\t{pw}\t{name}"));
    }
    // The demo gateway's token, made again with the accounts (shown once, like a password).
    if !lines.is_empty()
        && sqlx::query("SELECT 1 FROM device_gateway WHERE name = $1")
            .bind(crate::emergency::demo::GATEWAY)
            .fetch_optional(&db.pool)
            .await?
            .is_some()
    {
        let (_, token) =
            crate::emergency::ingest::gateway_token(db, crate::emergency::demo::GATEWAY).await?;
        lines.push(format!(
            "gateway\t{token}\t{}（设备消息 HTTP 接口令牌）",
            crate::emergency::demo::GATEWAY
        ));
    }
    if !lines.is_empty() {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let mut o = std::fs::OpenOptions::new();
        o.create(true).append(true);
        #[cfg(unix)]
        o.mode(0o600);
        let mut f = o.open(&file)?;
        for l in &lines {
            writeln!(f, "{l}")?;
        }
    }
    println!(
        "演示账号（用户名 / 密码，仅演示用，密码随机生成，另存于 {}）：",
        file.display()
    );
    if let Ok(text) = std::fs::read_to_string(&file) {
        for l in text.lines() {
            println!("  {l}");
        }
    }
    // Where `serve` will listen (`--listen`, else YIYANG_LISTEN as scripts/demo.sh passes it on).
    let listen = std::env::var("YIYANG_LISTEN")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    println!("启动后请访问 http://{listen}/ 登录（演示配置下动态验证码可选）。");
    Ok(())
}

async fn devices_cmd(cli: &Cli, what: &DevicesCmd) -> anyhow::Result<()> {
    let (db, _keys) = open(cli, 2).await?;
    match what {
        DevicesCmd::List { format } => {
            let list = crate::emergency::fleet::every(&db, &Scope::all(), None, None)
                .await
                .map_err(api_err)?;
            if format == "json" {
                let rows: Vec<serde_json::Value> = list
                    .iter()
                    .map(|d| {
                        serde_json::json!({"serial": d.serial, "kind": d.kind, "vendor": d.vendor,
                            "elder_citizen_id_masked": d.elder_citizen_id_masked,
                            "last_heartbeat": d.last_heartbeat, "battery": d.battery, "status": d.status})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for d in &list {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        d.serial,
                        d.kind_zh,
                        d.elder_citizen_id_masked.as_deref().unwrap_or("-"),
                        d.last_heartbeat.as_deref().unwrap_or("从未上报"),
                        d.battery.map_or("-".into(), |b| format!("{b}%")),
                        d.status_zh
                    );
                }
                println!("共 {} 台设备", list.len());
            }
        }
        DevicesCmd::Gateway { name } => {
            let name = name.trim();
            anyhow::ensure!(
                !name.is_empty() && name.chars().count() <= 50,
                "网关名称应为 1–50 个字"
            );
            let (id, token) = crate::emergency::ingest::gateway_token(&db, name).await?;
            println!("网关 {name}（{id}）的令牌（只显示这一次，请交给设备厂商）：\n{token}");
        }
        DevicesCmd::Simulate {
            rate,
            seconds,
            alarm_every,
        } => {
            let broker = crate::emergency::mqtt::Broker::from_env()?
                .ok_or_else(|| anyhow::anyhow!("YIYANG_MQTT_URL=off：没有可发送的消息代理"))?;
            let serials: Vec<String> = sqlx::query_scalar(
                "SELECT serial FROM device WHERE state = 'active' ORDER BY serial",
            )
            .fetch_all(&db.pool)
            .await?;
            println!(
                "向 {} 模拟 {} 台设备，每秒 {rate} 条消息……",
                broker.url(),
                serials.len()
            );
            let (beats, alarms) =
                crate::emergency::mqtt::simulate(&broker, &serials, *rate, *seconds, *alarm_every)
                    .await?;
            println!("已发送心跳 {beats} 条、报警 {alarms} 条");
        }
    }
    Ok(())
}

async fn emergency_cmd(cli: &Cli, what: &EmergencyCmd) -> anyhow::Result<()> {
    let (db, _keys) = open(cli, 2).await?;
    let EmergencyCmd::Events { since, format } = what;
    let since = match since {
        Some(s) => crate::emergency::parse_since("since", s).map_err(api_err)?,
        None => 0,
    };
    let rows = sqlx::query(
        "SELECT e.id, d.serial, e.kind, e.state, e.received_at, e.acknowledged_at, e.duplicate_count \
         FROM emergency_event e LEFT JOIN device d ON d.id = e.device_id WHERE e.received_at >= $1 \
         ORDER BY e.received_at, e.id",
    )
    .bind(since)
    .fetch_all(&db.pool)
    .await?;
    use crate::emergency::ms_text;
    let list: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({"id": r.get::<String, _>(0), "serial": r.get::<Option<String>, _>(1),
                "type": r.get::<String, _>(2), "status": r.get::<String, _>(3),
                "received_at": ms_text(r.get(4)),
                "acknowledged_at": r.get::<Option<i64>, _>(5).map(ms_text),
                "duplicate_count": r.get::<i64, _>(6)})
        })
        .collect();
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for e in &list {
            println!(
                "{}\t{}\t{}\t{}\t{}\t重复 {}",
                e["received_at"].as_str().unwrap_or(""),
                e["serial"].as_str().unwrap_or("来电"),
                e["type"].as_str().unwrap_or(""),
                e["status"].as_str().unwrap_or(""),
                e["id"].as_str().unwrap_or(""),
                e["duplicate_count"]
            );
        }
        println!("共 {} 个事件", list.len());
    }
    Ok(())
}

fn on_date(on: &Option<String>) -> anyhow::Result<chrono::NaiveDate> {
    match on {
        None => Ok(crate::platform::today()),
        Some(s) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| anyhow::anyhow!("--on 应为 YYYY-MM-DD")),
    }
}

async fn indicator_cmd(cli: &Cli, what: &IndicatorCmd) -> anyhow::Result<ExitCode> {
    use crate::indicator::{query, rollup, targets};
    let (db, _keys) = open(cli, 4).await?;
    let today = crate::platform::today();
    match what {
        IndicatorCmd::Value {
            id,
            region,
            period,
            format,
        } => {
            let v = query::value(&db, id, region, period, today)
                .await
                .map_err(api_err)?;
            if format == "json" {
                println!("{}", serde_json::to_string(&v)?);
            } else {
                let f = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_else(|| "—".into());
                println!(
                    "{}（{} {}）：{}{}  分子 {}  分母 {}  目标 {}  数据截至 {}",
                    v.name,
                    v.region_code,
                    v.period,
                    f(v.value),
                    v.unit,
                    f(v.numerator),
                    f(v.denominator),
                    f(v.target),
                    v.as_of.unwrap_or_else(|| "（尚未汇总）".into())
                );
            }
        }
        IndicatorCmd::Rebuild { format } => {
            let r = rollup::refresh(&db, today, true).await.map_err(api_err)?;
            if format == "json" {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "指标汇总已重建：{} 位老年人，{}–{} 年，{} 行，用时 {} 毫秒",
                    r.elders, r.first_year, r.last_year, r.rows_written, r.millis
                );
            }
        }
        IndicatorCmd::Refresh => {
            let r = rollup::refresh(&db, today, false).await.map_err(api_err)?;
            println!("{}", serde_json::to_string(&r)?);
        }
        IndicatorCmd::ImportTargets {
            file,
            region,
            source,
            create_missing,
            dry_run,
        } => {
            let bytes = std::fs::read(file)?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let r = targets::import_sheet(
                &db,
                &Scope::all(),
                &cli_who(),
                region,
                &name,
                bytes,
                source.clone(),
                *dry_run,
                *create_missing,
            )
            .await
            .map_err(api_err)?;
            for row in r.rows.iter().filter(|r| !r.errors.is_empty()) {
                println!(
                    "第 {} 行（{}）：{}",
                    row.row,
                    row.name,
                    row.errors.join("；")
                );
            }
            println!(
                "共 {} 行：可导入 {}，有误 {}；写入目标 {} 条，新建本地指标 {} 个{}",
                r.rows.len(),
                r.accepted,
                r.rejected,
                r.written,
                r.created_indicators,
                if r.dry_run {
                    "（试导入，未写入）"
                } else {
                    ""
                }
            );
            if r.rejected > 0 {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn catalog_cmd(cli: &Cli, what: &CatalogCmd) -> anyhow::Result<ExitCode> {
    use crate::catalog::evaluate;
    let (db, keys) = open(cli, 4).await?;
    let regions = crate::region::RegionIndex::load(&db).await?;
    let names = crate::catalog::http::namer(&regions);
    let who = cli_who();
    match what {
        CatalogCmd::Evaluate { region, on, format } => {
            let on = on_date(on)?;
            let codes: Vec<String> = match region {
                Some(r) => vec![r.clone()],
                None => sqlx::query(
                    "SELECT region_code FROM catalog_version WHERE state = 'published' ORDER BY region_code",
                )
                .fetch_all(&db.pool)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect(),
            };
            let mut runs = vec![];
            for code in codes {
                let s = evaluate::run(&db, &Scope::all(), &who, &code, on, &names)
                    .await
                    .map_err(api_err)?;
                runs.push(s);
            }
            // A first run leaves a WAL of gigabytes; fold it in now rather than in the next reader.
            db.checkpoint_now().await?;
            if format == "json" {
                println!("{}", serde_json::json!({ "runs": runs }));
            } else {
                for r in &runs {
                    println!(
                        "{}（第 {} 版）{}：{} 人参与评估，{} 项变动，用时 {} 毫秒",
                        regions.path_name(&r.region_code),
                        r.version_number,
                        r.on,
                        r.elders,
                        r.changes,
                        r.millis
                    );
                    println!(
                        "  项目                          符合  已享受  待审批  暂停  本次终止"
                    );
                    for i in &r.items {
                        println!(
                            "  {:<28} {:>6} {:>7} {:>7} {:>5} {:>8}",
                            i.name, i.eligible, i.granted, i.proposed, i.suspended, i.ended
                        );
                    }
                }
            }
        }
        CatalogCmd::Publish {
            file,
            region,
            effective_from,
        } => {
            use crate::catalog::store;
            let items: Vec<store::ItemDef> = serde_json::from_slice(&std::fs::read(file)?)
                .map_err(|e| anyhow::anyhow!("目录文件格式不正确：{e}"))?;
            let api = |e: crate::platform::error::ApiError| anyhow::anyhow!(e.detail);
            let scope = Scope::all();
            let draft = store::open_draft(&db, &scope, &who, region)
                .await
                .map_err(api)?;
            for old in &draft.items {
                store::delete_item(&db, &scope, &who, &draft.id, &old.code)
                    .await
                    .map_err(api)?;
            }
            for d in items {
                let code = d.code.clone();
                store::put_item(&db, &scope, &who, &draft.id, d)
                    .await
                    .map_err(|e| anyhow::anyhow!("项目 {code}：{}", e.detail))?;
            }
            let eff = on_date(effective_from)?.to_string();
            let v = store::publish(&db, &scope, &who, &draft.id, &eff)
                .await
                .map_err(api)?;
            println!(
                "已发布 {} 服务目录第 {} 版，共 {} 项，自 {eff} 起生效",
                regions.path_name(&v.region_code),
                v.number,
                v.items.len()
            );
        }
        CatalogCmd::Show { region } => {
            let v = crate::catalog::store::view(&db, region)
                .await
                .map_err(api_err)?;
            let items = v.published.map(|p| p.items).unwrap_or_default();
            println!("{}", serde_json::to_string_pretty(&items)?);
        }
        CatalogCmd::Explain { on, format } => {
            let on = on_date(on)?;
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            let cid = yiyang_kernel::CitizenId::parse(input.trim(), crate::platform::today())
                .map_err(|e| anyhow::anyhow!("身份证号无效：{e}"))?;
            let bidx = keys.blind_index(crate::registry::store::CID_DOMAIN, cid.as_str());
            let id: String = sqlx::query("SELECT id FROM elder WHERE citizen_id_bidx = $1")
                .bind(&bidx)
                .fetch_optional(&db.pool)
                .await?
                .map(|r| r.get(0))
                .ok_or_else(|| anyhow::anyhow!("未找到该身份证号的老年人"))?;
            let (region, items) = evaluate::explain_elder(&db, &Scope::all(), &id, on, &names)
                .await
                .map_err(api_err)?;
            // Reading a person's eligibility is a sensitive read, from the command line as well.
            let mut tx = db.begin().await?;
            crate::audit::append(
                &mut tx,
                &who,
                crate::audit::Entry {
                    action: "catalog.explain",
                    entity: "elder",
                    entity_id: Some(&id),
                    region_code: Some(&region),
                    detail: serde_json::json!({"items": items.len(), "on": on.to_string()})
                        .to_string(),
                },
            )
            .await?;
            tx.commit().await?;
            if format == "json" {
                let items: Vec<_> = items
                    .iter()
                    .map(|i| {
                        serde_json::json!({
                            "catalog_region": i.catalog_region,
                            "code": i.code,
                            "name": i.name,
                            "benefit_kind": i.benefit_kind,
                            "applies": i.applies,
                            "tier": i.tier,
                            "monthly_amount": if i.benefit_kind == "one_off" { None } else { i.amount },
                            "one_off_amount": if i.benefit_kind == "one_off" { i.amount } else { None },
                            "quota": i.quota.filter(|q| *q > 0),
                            "reasons": i.reasons.iter().map(|r| r.text.clone()).collect::<Vec<_>>(),
                            "entitlement_state": i.entitlement_state,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"elder_id": id, "citizen_id": yiyang_kernel::mask::citizen_id(cid.as_str()), "on": on.to_string(), "items": items})
                );
            } else {
                for i in &items {
                    let mark = if i.applies {
                        "✔ 适用"
                    } else {
                        "✘ 不适用"
                    };
                    let reasons: Vec<&str> = i.reasons.iter().map(|r| r.text.as_str()).collect();
                    println!("{mark}  {}：{}", i.name, reasons.join("；"));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An API error for the operator: the Chinese message, and the cause behind an internal error.
fn api_err(e: crate::platform::error::ApiError) -> anyhow::Error {
    match e.internal {
        Some(cause) => anyhow::anyhow!("{}（{cause:#}）", e.detail),
        None => anyhow::anyhow!(e.detail),
    }
}

/// Account lifecycle on the server's command line (the same rules and audit as the console).
async fn user_cmd(cli: &Cli, what: &UserCmd) -> anyhow::Result<ExitCode> {
    use crate::identity::lifecycle::{self, Action, Admin};
    let (db, _keys) = open(cli, 2).await?;
    let admin = Admin {
        who: cli_who(),
        user_id: None,
        region: None,
    };
    let done = async {
        match what {
            UserCmd::Add { .. } => unreachable!("handled above"),
            UserCmd::Disable { username, reason }
            | UserCmd::Enable { username, reason }
            | UserCmd::Unlock { username, reason } => {
                let (action, word) = match what {
                    UserCmd::Disable { .. } => (Action::Disable, "已停用"),
                    UserCmd::Enable { .. } => (Action::Enable, "已启用"),
                    _ => (Action::Unlock, "已解除锁定"),
                };
                let id = lifecycle::id_of(&db, username).await?;
                lifecycle::set_state(&db, &admin, &id, action, reason).await?;
                Ok(format!("{word}账号 {username}"))
            }
            UserCmd::ResetPassword { username, reason } => {
                let mut pw = String::new();
                std::io::stdin().read_to_string(&mut pw).map_err(|e| {
                    crate::platform::error::ApiError::bad_request(format!("无法读取新密码：{e}"))
                })?;
                let pw = pw.lines().next().unwrap_or("").to_string();
                let id = lifecycle::id_of(&db, username).await?;
                lifecycle::reset_password(&db, &admin, &id, Some(pw), reason).await?;
                Ok(format!(
                    "已重置账号 {username} 的密码；该账号的会话已结束，下次登录时须修改密码"
                ))
            }
        }
    }
    .await;
    match done {
        Ok(msg) => {
            println!("{msg}");
            Ok(ExitCode::SUCCESS)
        }
        Err::<_, crate::platform::error::ApiError>(e) => {
            eprintln!("操作失败：{}", e.detail);
            Ok(ExitCode::from(1))
        }
    }
}

/// Where visit photos are kept: `YIYANG_FILES_DIR`, or `files/` beside the key file (both are
/// what a county backs up apart from the database).
fn files_dir(cli: &Cli) -> PathBuf {
    match std::env::var("YIYANG_FILES_DIR") {
        Ok(d) if !d.trim().is_empty() => PathBuf::from(d),
        _ => cli
            .key_file
            .parent()
            .map(|p| p.join("files"))
            .unwrap_or_else(|| PathBuf::from("files")),
    }
}

/// Where this server's audit checkpoints go (see `Cli::audit_checkpoints`).
fn checkpoint_sink(cli: &Cli) -> crate::audit::checkpoint::Sink {
    let file = match cli.audit_checkpoints.as_str() {
        "" => cli
            .key_file
            .parent()
            .map(|p| p.join("audit-checkpoints.log"))
            .unwrap_or_else(|| PathBuf::from("audit-checkpoints.log"))
            .display()
            .to_string(),
        other => other.to_string(),
    };
    crate::audit::checkpoint::Sink::new(&file)
}

/// `yiyang admission rank`: the queue order of the applicants read from standard input.
async fn homecare_settle(
    cli: &Cli,
    month: &str,
    region: Option<&str>,
    dry_run: bool,
    format: &str,
) -> anyhow::Result<ExitCode> {
    let (db, _keys) = open(cli, 2).await?;
    let scope = Scope::all();
    if let Some(r) = region {
        scope
            .region(r)
            .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    }
    let started = std::time::Instant::now();
    let s = if dry_run {
        crate::home_service::settle::compute(&db, &scope, month, region, None).await
    } else {
        crate::home_service::settle::record(&db, &scope, &cli_who(), month, region)
            .await
            .map(|r| r.settlement)
    };
    let s = match s {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}", e.detail);
            return Ok(ExitCode::from(2));
        }
    };
    if format == "json" {
        let providers: Vec<serde_json::Value> = s
            .providers
            .iter()
            .map(|p| {
                serde_json::json!({"provider": p.provider, "provider_id": p.provider_id, "orders": p.orders,
                    "meals": p.meals, "self_paid": p.self_paid, "gross_fen": p.gross_fen,
                    "excluded_fen": p.excluded_fen, "payable_fen": p.payable_fen,
                    "by_level": {"province": p.by_level.province, "city": p.by_level.city,
                        "county": p.by_level.county, "town": p.by_level.town}})
            })
            .collect();
        let excluded: Vec<serde_json::Value> = s
            .excluded
            .iter()
            .map(|x| serde_json::json!({"ref": x.ref_, "kind": x.kind, "reason": x.reason}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"month": s.month, "providers": providers,
                "total_payable_fen": s.total_payable_fen, "excluded": excluded})
        );
    } else {
        let yuan = |f: i64| format!("{:.2}", f as f64 / 100.0);
        println!(
            "{} 居家上门服务结算{}：{} 家服务机构，应付 {} 元，暂不结算 {} 条（用时 {:.1} 秒）",
            s.month,
            if dry_run {
                "（试算，未保存）"
            } else {
                "（已生成，待审核）"
            },
            s.providers.len(),
            yuan(s.total_payable_fen),
            s.excluded.len(),
            started.elapsed().as_secs_f64()
        );
        for p in &s.providers {
            println!(
                "  {}：工单 {}，助餐 {}，自费 {}，应结 {} 元，暂不结算 {} 元，应付 {} 元（市 {}，县 {}，镇 {}）",
                p.provider,
                p.orders,
                p.meals,
                p.self_paid,
                yuan(p.gross_fen),
                yuan(p.excluded_fen),
                yuan(p.payable_fen),
                yuan(p.by_level.city),
                yuan(p.by_level.county),
                yuan(p.by_level.town)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn admission_rank(
    cli: &Cli,
    region: Option<&str>,
    on: &Option<String>,
    format: &str,
) -> anyhow::Result<ExitCode> {
    use yiyang_kernel::admission::{ApplicantInput, QueuePolicy, rank};
    let on = on_date(on)?;
    let mut input = String::new();
    std::io::Read::take(std::io::stdin(), 64 << 20).read_to_string(&mut input)?;
    let raw: Vec<serde_json::Value> = match serde_json::from_str(&input) {
        Ok(v) => v,
        Err(e) => {
            eprintln!(
                "输入应为申请人的 JSON 列表（第 {} 行第 {} 列有误）",
                e.line(),
                e.column()
            );
            return Ok(ExitCode::from(2));
        }
    };
    let mut applicants = Vec::with_capacity(raw.len());
    let mut errors = vec![];
    for (i, v) in raw.into_iter().enumerate() {
        let who = v
            .get("ref")
            .map(|r| r.to_string())
            .unwrap_or_else(|| format!("第 {} 个", i + 1));
        match serde_json::from_value::<ApplicantInput>(v)
            .map_err(|e| format!("字段有误：{e}"))
            .and_then(|a| a.check(i as i64))
        {
            Ok(a) => applicants.push(a),
            Err(e) => errors.push(format!("申请人 {who}：{e}")),
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        return Ok(ExitCode::from(2));
    }
    let (policy, source) = match region {
        None => (QueuePolicy::default_policy(), "默认轮候规则".to_string()),
        Some(r) => {
            let code = yiyang_kernel::RegionCode::parse(r)
                .map_err(|e| anyhow::anyhow!("区划代码 {r} 有误：{e}"))?;
            // The policy is no secret: the database alone, without the key file.
            let db = Db::connect(&cli.database, 1).await?;
            migrations::migrate(&db).await?;
            let regions = crate::region::RegionIndex::load(&db).await?;
            let (p, view) = crate::institution::queue::policy_for(&db, &regions, &code).await?;
            (p, view.source)
        }
    };
    let order = rank(&policy, &applicants, on);
    if format == "json" {
        println!(
            "{}",
            serde_json::json!({"order": order, "policy": source, "on": on.to_string()})
        );
    } else {
        println!("{source}，排序日期 {on}，共 {} 人", order.len());
        for p in &order {
            println!(
                "{:>4}  第{}档  {}  {}",
                p.position,
                p.tier,
                p.reference,
                p.reasons.join("；")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
