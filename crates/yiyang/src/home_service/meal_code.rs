//! 助餐码 — the family's code for the meal counter. Many elders leave the ID card at home; the
//! family, once past the phone code on the public page, gets an 8-digit code the elder tells or
//! shows at any meal point for 30 days (a new code ends the old one). Only a keyed hash of it is
//! kept, so the database cannot give codes back. A counter account that types wrong codes is
//! stopped for the day after a few (counted in the database), so codes cannot be tried one after
//! another.

use crate::platform::crypto::KeyRing;
use crate::platform::db::{Db, Tx};
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::migrations::Stmt::{self, *};
use serde::Serialize;
use sqlx::Row;

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE meal_code (elder_id TEXT PRIMARY KEY REFERENCES elder (id), code_bidx TEXT NOT NULL, \
         valid_until TEXT NOT NULL, created_at TEXT NOT NULL)",
    ),
    Both("CREATE UNIQUE INDEX meal_code_bidx ON meal_code (code_bidx)"),
];

/// Wrong codes typed per counter account and day, kept in the database: the limit holds across
/// a restart and several servers.
pub const MIGRATION_TRIES: &[Stmt] = &[Both(
    "CREATE TABLE meal_code_try (account TEXT NOT NULL, day TEXT NOT NULL, n BIGINT NOT NULL, \
     PRIMARY KEY (account, day))",
)];

const DOMAIN: &str = "meal_code";
const VALID_DAYS: u64 = 30;
/// Wrong codes a counter account may type in a day.
const WRONG_A_DAY: i64 = 20;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MealCode {
    /// 8 digits, shown as "1234 5678"
    pub code: String,
    /// The last day it works, itself included (YYYY-MM-DD)
    pub valid_until: String,
}

/// A new code for the elder, ending the one before. In the caller's transaction (audited there).
pub async fn issue(tx: &mut Tx<'_>, keys: &KeyRing, elder_id: &str) -> ApiResult<MealCode> {
    use rand::Rng;
    let active: Option<String> =
        sqlx::query_scalar("SELECT status FROM elder WHERE id = $1 AND death_date IS NULL")
            .bind(elder_id)
            .fetch_optional(&mut **tx)
            .await?;
    if active.as_deref() != Some("active") {
        return Err(ApiError::conflict(
            "档案显示老人已去世或已迁出，不能生成助餐码",
        ));
    }
    // Valid through its last day: today and 29 more.
    let until = (crate::platform::today() + chrono::Days::new(VALID_DAYS - 1)).to_string();
    for _ in 0..8 {
        let code = format!("{:08}", rand::thread_rng().gen_range(0..100_000_000u32));
        let bidx = keys.blind_index(DOMAIN, &code);
        // Another elder's code: draw again (one in millions while a county has thousands).
        let taken: Option<String> = sqlx::query_scalar(
            "SELECT elder_id FROM meal_code WHERE code_bidx = $1 AND elder_id <> $2",
        )
        .bind(&bidx)
        .bind(elder_id)
        .fetch_optional(&mut **tx)
        .await?;
        if taken.is_some() {
            continue;
        }
        sqlx::query("DELETE FROM meal_code WHERE elder_id = $1")
            .bind(elder_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO meal_code (elder_id, code_bidx, valid_until, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(elder_id)
        .bind(&bidx)
        .bind(&until)
        .bind(crate::platform::now_rfc3339())
        .execute(&mut **tx)
        .await?;
        return Ok(MealCode {
            code: format!("{} {}", &code[..4], &code[4..]),
            valid_until: until,
        });
    }
    Err(ApiError::conflict("助餐码生成失败，请再点一次"))
}

/// The 8 digits of a typed code (spaces and dashes dropped), if that is what it is.
pub fn digits(typed: &str) -> Option<String> {
    let d: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit())).then_some(d)
}

/// The elder whose code this is, for a counter account; a wrong or lapsed code counts against
/// the account's day.
pub async fn elder_of(db: &Db, keys: &KeyRing, account: &str, code: &str) -> ApiResult<String> {
    let today = crate::platform::today().to_string();
    let spent: Option<i64> =
        sqlx::query_scalar("SELECT n FROM meal_code_try WHERE account = $1 AND day = $2")
            .bind(account)
            .bind(&today)
            .fetch_optional(&db.pool)
            .await?;
    if spent.is_some_and(|n| n >= WRONG_A_DAY) {
        return Err(ApiError::too_many(
            "今天输错助餐码的次数太多，助餐码暂停使用，请改用身份证登记",
        ));
    }
    let found =
        sqlx::query("SELECT elder_id FROM meal_code WHERE code_bidx = $1 AND valid_until >= $2")
            .bind(keys.blind_index(DOMAIN, code))
            .bind(&today)
            .fetch_optional(&db.pool)
            .await?;
    match found {
        Some(r) => Ok(r.get(0)),
        None => {
            // Counted in one statement: two wrong codes at once are two.
            let n: i64 = sqlx::query_scalar(
                "INSERT INTO meal_code_try (account, day, n) VALUES ($1, $2, 1) \
                 ON CONFLICT (account, day) DO UPDATE SET n = meal_code_try.n + 1 RETURNING n",
            )
            .bind(account)
            .bind(&today)
            .fetch_one(&mut *db.writer().await?)
            .await?;
            Err(ApiError::not_found(format!(
                "助餐码不对或已过期（今天还可以再输错 {} 次）。请核对号码，或请家属在“居家服务查询”重新生成",
                (WRONG_A_DAY - n).max(0)
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_typed_code_is_its_eight_digits() {
        assert_eq!(super::digits("1234 5678").as_deref(), Some("12345678"));
        assert_eq!(super::digits("1234-5678").as_deref(), Some("12345678"));
        assert_eq!(super::digits("1234567"), None);
        assert_eq!(super::digits("32068219400101001X"), None);
        assert_eq!(super::digits("1234567a"), None);
    }
}
