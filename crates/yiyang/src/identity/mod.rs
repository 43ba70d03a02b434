//! identity — named accounts, roles with separated administrator duties (三员分立), region-bound
//! scopes, Argon2id passwords, lockout, server-side sessions and TOTP.

pub mod http;
pub mod lifecycle;
pub mod password;
pub mod session;
pub mod totp;

use crate::platform::error::ApiError;
use crate::platform::migrations::Stmt::{self, *};
use serde::{Deserialize, Serialize};
use yiyang_kernel::RegionCode;

pub use session::Actor;

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE app_user (id TEXT PRIMARY KEY, username TEXT NOT NULL, display_name TEXT NOT NULL, \
         password_hash TEXT NOT NULL, roles TEXT NOT NULL, region_code TEXT NOT NULL, \
         scope_edit BIGINT NOT NULL, scope_aggregates BIGINT NOT NULL, scope_individuals BIGINT NOT NULL, \
         totp_secret_enc BLOB, totp_enabled BIGINT NOT NULL DEFAULT 0, failed_count BIGINT NOT NULL DEFAULT 0, \
         locked_until BIGINT, disabled BIGINT NOT NULL DEFAULT 0, created_at TEXT NOT NULL, \
         CONSTRAINT app_user_username_key UNIQUE (username))",
    ),
    Both(
        "CREATE TABLE user_session (token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES app_user (id), \
         stage TEXT NOT NULL, created_at BIGINT NOT NULL, last_seen BIGINT NOT NULL, ip TEXT, pending_secret_enc BLOB)",
    ),
    Both("CREATE INDEX user_session_user ON user_session (user_id)"),
];

/// An account can be bound to one service organisation (a home's manager, later a provider's
/// dispatcher): everything it reads or changes is that organisation's.
pub const MIGRATION_ORG: &[Stmt] = &[Both("ALTER TABLE app_user ADD COLUMN org_id TEXT")];

/// A caregiver's account is also bound to her staff record: she sees and moves her own visits.
pub const MIGRATION_STAFF: &[Stmt] = &[Both("ALTER TABLE app_user ADD COLUMN staff_id TEXT")];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 系统管理员: runs the system, cannot read the audit trail or change permissions.
    SystemAdmin,
    /// 安全管理员: manages accounts and permissions, cannot edit elder data or read audit.
    SecurityAdmin,
    /// 审计管理员: reads the audit trail only.
    AuditAdmin,
    /// 民政干部
    Officer,
    /// 网格员 / 社工
    Worker,
    /// 评估员: records ability assessments.
    Assessor,
    /// 机构负责人: keeps one organisation's beds, residents and staff (the account is bound to it).
    InstitutionManager,
    /// 服务商调度员: places and dispatches one provider's home visits (bound to the provider).
    Dispatcher,
    /// 护理员: her own visits on a phone — accept, check in and out, get the family's code (bound
    /// to the provider and to her staff record).
    Caregiver,
    /// 助餐点工作人员: records the meals served at one meal point's counter (bound to it).
    MealCounter,
    /// 12349 坐席: takes alarms and calls on the board, finds the elder, sends help.
    Operator,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s.trim() {
            "system_admin" => Role::SystemAdmin,
            "security_admin" => Role::SecurityAdmin,
            "audit_admin" => Role::AuditAdmin,
            "officer" => Role::Officer,
            "worker" => Role::Worker,
            "assessor" => Role::Assessor,
            "institution_manager" => Role::InstitutionManager,
            "dispatcher" => Role::Dispatcher,
            "caregiver" => Role::Caregiver,
            "meal_counter" => Role::MealCounter,
            "operator" => Role::Operator,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SystemAdmin => "system_admin",
            Role::SecurityAdmin => "security_admin",
            Role::AuditAdmin => "audit_admin",
            Role::Officer => "officer",
            Role::Worker => "worker",
            Role::Assessor => "assessor",
            Role::InstitutionManager => "institution_manager",
            Role::Dispatcher => "dispatcher",
            Role::Caregiver => "caregiver",
            Role::MealCounter => "meal_counter",
            Role::Operator => "operator",
        }
    }
    pub fn zh(self) -> &'static str {
        match self {
            Role::SystemAdmin => "系统管理员",
            Role::SecurityAdmin => "安全管理员",
            Role::AuditAdmin => "审计管理员",
            Role::Officer => "民政干部",
            Role::Worker => "网格员",
            Role::Assessor => "评估员",
            Role::InstitutionManager => "机构负责人",
            Role::Dispatcher => "服务商调度员",
            Role::Caregiver => "护理员",
            Role::MealCounter => "助餐点工作人员",
            Role::Operator => "12349 坐席",
        }
    }
    pub fn perms(self) -> &'static [Perm] {
        use Perm::*;
        match self {
            Role::SystemAdmin => &[SystemConfig],
            Role::SecurityAdmin => &[UsersManage],
            Role::AuditAdmin => &[AuditRead],
            Role::Officer => &[
                RegistryRead,
                RegistryEdit,
                RegistryReveal,
                RegistryImport,
                RegistryExport,
                AggregatesRead,
                AssessmentRecord,
                CatalogManage,
                IndicatorManage,
                OrgManage,
                StaffManage,
                InstitutionManage,
                HomeServiceManage,
                MealServe,
                EmergencyHandle,
                EmergencySupervise,
                CareVisitRecord,
                CareVisitManage,
            ],
            Role::Worker => &[RegistryRead, RegistryEdit, AggregatesRead, CareVisitRecord],
            Role::Assessor => &[RegistryRead, AssessmentRecord],
            Role::InstitutionManager => &[InstitutionManage, StaffManage],
            Role::Dispatcher => &[HomeServiceManage, StaffManage],
            Role::Caregiver => &[HomeVisit],
            Role::MealCounter => &[MealServe],
            Role::Operator => &[RegistryRead, EmergencyHandle, ServiceOrderPlace],
        }
    }
    /// A role that works for one organisation: the account must name it, and holds no other role.
    pub fn org_bound(self) -> bool {
        matches!(
            self,
            Role::InstitutionManager | Role::Dispatcher | Role::Caregiver | Role::MealCounter
        )
    }
    pub fn is_staff(self) -> bool {
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    RegistryRead,
    RegistryEdit,
    RegistryReveal,
    RegistryImport,
    RegistryExport,
    AggregatesRead,
    AssessmentRecord,
    /// Define, publish and evaluate the basic-service catalogue; approve proposed entitlements.
    CatalogManage,
    /// Set indicator targets and enter the values the records cannot give.
    IndicatorManage,
    /// Register and change service organisations (institutions, stations, providers).
    OrgManage,
    /// Add and change an organisation's staff (its own manager may; so may an officer).
    StaffManage,
    /// Keep beds and admit, move, send on leave and discharge residents.
    InstitutionManage,
    /// Place, dispatch and follow home-visit orders (居家上门服务).
    HomeServiceManage,
    /// Do one's own visits: accept, check in and out, have them confirmed.
    HomeVisit,
    /// Place a home visit for an elder (the 12349 line takes a call for 助洁 or 助医); its
    /// dispatch, steps and settlement stay with the provider and the officer
    ServiceOrderPlace,
    /// Record meals served at a meal point's counter (老年助餐).
    MealServe,
    /// Take alarms and calls on the 12349 board: acknowledge, triage, dispatch, close (紧急呼叫).
    EmergencyHandle,
    /// Set a region's emergency clocks and be told of the events that breach them (督办).
    EmergencySupervise,
    /// Record care visits and read the due lists (探访关爱).
    CareVisitRecord,
    /// Set the visit duty rules, give villages to village workers, close referrals.
    CareVisitManage,
    AuditRead,
    UsersManage,
    SystemConfig,
}

impl Perm {
    pub fn as_str(self) -> &'static str {
        match self {
            Perm::RegistryRead => "registry.read",
            Perm::RegistryEdit => "registry.edit",
            Perm::RegistryReveal => "registry.reveal",
            Perm::RegistryImport => "registry.import",
            Perm::RegistryExport => "registry.export",
            Perm::AggregatesRead => "aggregates.read",
            Perm::AssessmentRecord => "assessment.record",
            Perm::CatalogManage => "catalog.manage",
            Perm::IndicatorManage => "indicator.manage",
            Perm::OrgManage => "org.manage",
            Perm::StaffManage => "org.staff",
            Perm::InstitutionManage => "institution.manage",
            Perm::HomeServiceManage => "home_service.manage",
            Perm::HomeVisit => "home_service.visit",
            Perm::ServiceOrderPlace => "home_service.order",
            Perm::MealServe => "home_service.meal",
            Perm::EmergencyHandle => "emergency.handle",
            Perm::EmergencySupervise => "emergency.supervise",
            Perm::CareVisitRecord => "care_visit.record",
            Perm::CareVisitManage => "care_visit.manage",
            Perm::AuditRead => "audit.read",
            Perm::UsersManage => "users.manage",
            Perm::SystemConfig => "system.config",
        }
    }
    fn zh(self) -> &'static str {
        match self {
            Perm::RegistryRead => "查询老年人档案",
            Perm::RegistryEdit => "编辑老年人档案",
            Perm::RegistryReveal => "查看完整身份信息",
            Perm::RegistryImport => "批量导入",
            Perm::RegistryExport => "导出",
            Perm::AggregatesRead => "查看统计",
            Perm::AssessmentRecord => "录入能力评估",
            Perm::CatalogManage => "管理服务目录",
            Perm::IndicatorManage => "管理指标目标",
            Perm::OrgManage => "管理服务机构",
            Perm::StaffManage => "管理机构人员",
            Perm::InstitutionManage => "管理床位与入住",
            Perm::HomeServiceManage => "管理居家上门服务",
            Perm::HomeVisit => "上门服务签到签退",
            Perm::ServiceOrderPlace => "代老人下单上门服务",
            Perm::MealServe => "登记助餐",
            Perm::EmergencyHandle => "处置紧急呼叫",
            Perm::EmergencySupervise => "督办紧急呼叫",
            Perm::CareVisitRecord => "记录探访",
            Perm::CareVisitManage => "管理探访任务",
            Perm::AuditRead => "查看审计日志",
            Perm::UsersManage => "管理用户",
            Perm::SystemConfig => "系统配置",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct Scopes {
    /// 编辑
    pub edit: bool,
    /// 查看汇总
    pub aggregates: bool,
    /// 查询个人
    pub individuals: bool,
}

/// The region range a query may touch. Only obtainable from an [`Actor`] that holds the matching
/// scope, so a store function that takes `&Scope` cannot be called without the check.
#[derive(Debug, Clone)]
pub struct Scope {
    pub lo: String,
    pub hi: String,
    /// None = the whole country (command-line operators only).
    pub root: Option<RegionCode>,
    /// An account bound to one organisation sees only that organisation's records.
    pub org: Option<String>,
    /// A caregiver's account: only the visits given to this staff member.
    pub staff: Option<String>,
}

impl Scope {
    pub fn of(region: &RegionCode) -> Scope {
        let (lo, hi) = region.subtree_range();
        Scope {
            lo,
            hi,
            root: Some(region.clone()),
            org: None,
            staff: None,
        }
    }
    /// For the command line run by the operator of the deployment, who holds the database anyway.
    pub fn all() -> Scope {
        Scope {
            lo: "000000000000".into(),
            hi: "999999999999".into(),
            root: None,
            org: None,
            staff: None,
        }
    }
    /// The code range of a requested region inside this scope (the whole scope when none is asked);
    /// a region outside it is refused.
    pub fn narrow(&self, region_code: Option<&str>) -> Result<(String, String), ApiError> {
        let Some(rc) = region_code.filter(|s| !s.is_empty()) else {
            return Ok((self.lo.clone(), self.hi.clone()));
        };
        Ok(self.region(rc)?.subtree_range())
    }
    /// A requested region code, parsed, and refused when outside this scope.
    pub fn region(&self, raw: &str) -> Result<RegionCode, ApiError> {
        let code =
            RegionCode::parse(raw).map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
        if !self.covers(&code) {
            return Err(ApiError::forbidden("所选区划不在您的管辖范围内"));
        }
        Ok(code)
    }
    pub fn covers(&self, code: &RegionCode) -> bool {
        self.root.as_ref().is_none_or(|r| r.contains(code))
    }
    pub fn contains(&self, code: &str) -> bool {
        self.lo.as_str() <= code && code <= self.hi.as_str()
    }
    /// An organisation (by id and place) inside this scope: its place in the region range and, for
    /// an account bound to one organisation, that very one.
    pub fn holds(&self, org_id: &str, region: &str) -> bool {
        self.contains(region) && self.org.as_deref().is_none_or(|o| o == org_id)
    }
    /// Work over a whole region (publishing its rules, registering organisations) is not for an
    /// account bound to one organisation.
    pub fn regional(&self) -> Result<(), ApiError> {
        match self.org {
            None => Ok(()),
            Some(_) => Err(ApiError::forbidden(
                "机构账号只能办理本机构的事务，区划范围的设置请由民政干部办理",
            )),
        }
    }
}

impl Actor {
    pub fn has(&self, p: Perm) -> bool {
        self.roles.iter().any(|r| r.perms().contains(&p))
    }
    pub fn require(&self, p: Perm) -> Result<(), ApiError> {
        if self.has(p) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("您没有“{}”的权限", p.zh())))
        }
    }
    /// Scope for reading individual records.
    pub fn individuals(&self) -> Result<Scope, ApiError> {
        self.require(Perm::RegistryRead)?;
        if !self.scopes.individuals {
            return Err(ApiError::forbidden("您的账号没有“查询个人”的范围"));
        }
        Ok(self.scope())
    }
    /// Scope for changing records.
    pub fn edit(&self) -> Result<Scope, ApiError> {
        self.require(Perm::RegistryEdit)?;
        if !self.scopes.edit || !self.scopes.individuals {
            return Err(ApiError::forbidden("您的账号没有“编辑”的范围"));
        }
        Ok(self.scope())
    }
    /// Scope for recording ability assessments.
    pub fn assess(&self) -> Result<Scope, ApiError> {
        self.require(Perm::AssessmentRecord)?;
        if !self.scopes.individuals {
            return Err(ApiError::forbidden("您的账号没有“查询个人”的范围"));
        }
        Ok(self.scope())
    }
    pub fn aggregates(&self) -> Result<Scope, ApiError> {
        self.require(Perm::AggregatesRead)?;
        if !self.scopes.aggregates {
            return Err(ApiError::forbidden("您的账号没有“查看汇总”的范围"));
        }
        Ok(self.scope())
    }
    /// The account's region and, when bound to one, its organisation.
    pub fn scope(&self) -> Scope {
        Scope {
            org: self.org_id.clone(),
            staff: self.staff_id.clone(),
            ..Scope::of(&self.region)
        }
    }
    /// Scope over organisations' individual records (residents, claims' lines): an officer's
    /// individual scope, or the bound organisation's for its manager.
    pub fn org_people(&self) -> Result<Scope, ApiError> {
        if self.org_id.is_some() && self.has(Perm::InstitutionManage) && self.scopes.individuals {
            return Ok(self.scope());
        }
        self.individuals()
    }
    /// Scope for reading organisations, beds and their counts: whoever reads records or figures of
    /// the region, or an account bound to an organisation (its own only).
    pub fn org_reader(&self) -> Result<Scope, ApiError> {
        if self.org_id.is_some()
            && (self.has(Perm::InstitutionManage) || self.has(Perm::StaffManage))
        {
            return Ok(self.scope());
        }
        self.individuals().or_else(|_| self.aggregates())
    }
    pub fn who(&self) -> crate::audit::Who {
        crate::audit::Who {
            actor_id: Some(self.user_id.clone()),
            actor_name: self.username.clone(),
        }
    }
}
