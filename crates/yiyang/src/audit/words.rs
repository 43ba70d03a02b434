//! The audit trail in plain Chinese: each action's name, and a row as a sentence ("县民政局 李科长
//! 批准了 王某某 的高龄津贴"). Names of people are masked; the stored row stays as it was.

/// An action's name, or the code itself for one this table does not know yet.
pub fn action_zh(action: &str) -> &str {
    match action {
        "auth.login" => "登录",
        "auth.login_failed" => "登录失败",
        "auth.locked" => "账号被锁定",
        "auth.logout" => "退出登录",
        "auth.totp_enrolled" => "设置动态验证码",
        "user.create" => "新建账号",
        "user.access" => "修改账号权限",
        "user.disable" => "停用账号",
        "user.enable" => "启用账号",
        "user.unlock" => "解锁账号",
        "user.reset_password" => "重置密码",
        "user.change_password" => "修改本人密码",
        "elder.create" => "新建档案",
        "elder.update" => "修改档案",
        "elder.view" => "查看档案",
        "elder.search" => "按姓名或身份证号查询",
        "elder.reveal" => "查看完整信息",
        "elder.death" => "登记死亡",
        "elder.move_out" => "登记迁出",
        "registry.import" => "导入档案",
        "registry.import.part" => "导入档案（分段写入）",
        "registry.export" => "导出档案",
        "registry.import_errors_download" => "下载导入错误报告",
        "registry.demo_generate" => "生成演示数据",
        "org.demo_generate" => "生成演示机构",
        "import.outside_scope" => "导入时遇到辖区外人员",
        "assessment.create" => "录入能力评估",
        "assessment.correct" => "更正能力评估",
        "assessment.adopt_ltc" => "采信长护险评定",
        "assessment.import" => "导入能力评估",
        "assessment.import.part" => "导入能力评估（分段写入）",
        "assessment.trigger" => "登记复评触发",
        "assessment.view" => "查看评估记录",
        "assessment.due.view" => "查看待评估名单",
        "assessment.due_export" => "导出待评估名单",
        "assessment.validity_set" => "设置评估有效期",
        "assessment.assign" => "派给评估员",
        "assessment.unassign" => "撤回评估派单",
        "org.create" => "登记服务机构",
        "org.update" => "修改服务机构",
        "staff.create" => "登记从业人员",
        "staff.update" => "修改从业人员",
        "bed.create" => "添加床位",
        "bed.update" => "修改床位",
        "admission.create" => "办理入住",
        "admission.transfer" => "调床",
        "admission.leave" => "登记请假",
        "admission.return" => "销假",
        "admission.discharge" => "办理退住",
        "admission.list" => "查看在住老人名单",
        "admission.policy" => "发布入住轮候规则",
        "admission.apply" => "登记入住申请",
        "admission.withdraw" => "撤回入住申请",
        "admission.queue.view" => "查看入住轮候名单",
        "catalog.draft" => "新建目录草稿",
        "catalog.item_put" => "编辑目录项目",
        "catalog.item_delete" => "删除目录项目",
        "catalog.publish" => "发布服务目录",
        "catalog.evaluate" => "运行资格评估",
        "catalog.evaluate_interrupted" => "清理中断的资格评估",
        "catalog.explain" => "查看资格说明",
        "entitlement.list" => "查看待遇名单",
        "entitlement.approve" => "批准待遇",
        "entitlement.refuse" => "不予批准待遇",
        "payment.batch" => "生成发放批次",
        "payment.export" => "导出银行代发文件",
        "payment.review" => "复核发放批次",
        "payment.paid" => "标记批次已发放",
        "payment.discard" => "作废发放批次草稿",
        "payment.check" => "核查死亡后发放",
        "list.create" => "新建名单",
        "list.add" => "加入名单",
        "list.remove" => "移出名单",
        "indicator.entry" => "填报指标",
        "indicator.target.set" => "设置指标目标",
        "indicator.target.delete" => "删除指标目标",
        "indicator.target.import" => "导入指标目标",
        "indicator.people.view" => "查看指标名单",
        "indicator.people.export" => "导出指标名单",
        "region.code_change" => "区划代码变更",
        "audit.view" => "查看审计日志",
        "audit.export" => "导出审计日志",
        other => other,
    }
}

/// What an action was done to, in words.
pub fn entity_zh(entity: &str) -> &str {
    match entity {
        "elder" => "老年人档案",
        "entitlement" => "待遇",
        "assessment" => "能力评估",
        "catalog" | "catalog_version" => "服务目录",
        "catalog_run" => "资格评估",
        "payment_batch" => "发放批次",
        "app_user" | "user" => "账号",
        "import_job" => "导入任务",
        "indicator" | "indicator_target" => "指标",
        "elder_list" => "名单",
        "audit_log" => "审计日志",
        "region" => "行政区划",
        "organisation" => "服务机构",
        "bed" => "床位",
        "staff" => "从业人员",
        "admission" => "入住记录",
        "admission_application" => "入住申请",
        "session" => "登录会话",
        other => other,
    }
}

/// What a row's detail says, in a few words (the fields an officer would look for).
fn detail_words(action: &str, detail: &serde_json::Value) -> String {
    let s = |k: &str| detail.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let mut parts = vec![];
    if let Some(reason) = ["reason", "reveal_reason", "note"]
        .iter()
        .map(|k| s(k))
        .find(|v| !v.is_empty())
    {
        let what = if action == "entitlement.refuse" {
            "理由"
        } else {
            "事由"
        };
        parts.push(format!("{what}：{reason}"));
    }
    if let Some(fen) = detail.get("total_fen").and_then(|v| v.as_i64()) {
        parts.push(format!("金额 {:.2} 元", fen as f64 / 100.0));
    }
    if action == "assessment.assign" && !s("assessor").is_empty() {
        parts.push(format!("评估员：{}", s("assessor")));
    }
    if let Some(n) = detail.get("rows").and_then(|v| v.as_i64()) {
        parts.push(format!("{n} 行"));
    }
    if let Some(fields) = detail.get("changed").and_then(|v| v.as_array())
        && !fields.is_empty()
    {
        let names: Vec<&str> = fields.iter().filter_map(|f| f.as_str()).collect();
        parts.push(format!("修改了 {}", names.join("、")));
    }
    if let Some(f) = detail.get("factors").and_then(|v| v.as_array()) {
        let said: Vec<&str> = f
            .iter()
            .filter_map(|x| x.as_str())
            .map(|x| match x {
                "password" => "密码",
                "totp" => "动态验证码",
                other => other,
            })
            .collect();
        parts.push(format!("验证方式：{}", said.join("、")));
    }
    parts.join("；")
}

/// A row as a sentence: who did what to whom (a masked name, when the row concerns a person).
pub fn sentence(
    actor: &str,
    action: &str,
    entity: &str,
    person: Option<&str>,
    item: Option<&str>,
    detail: &str,
) -> String {
    let what = action_zh(action);
    let object = match (person, item) {
        (Some(p), Some(i)) => format!(" {p} 的{i}"),
        (Some(p), None) => format!(" {p}"),
        (None, Some(i)) => format!(" {i}"),
        (None, None) if action_zh(action) == action => format!(" {}", entity_zh(entity)),
        (None, None) => String::new(),
    };
    let verb = match action {
        "entitlement.approve" => format!("批准了{object}"),
        "entitlement.refuse" => format!("不予批准{object}"),
        "elder.reveal" => format!("查看了{object} 的完整信息"),
        "elder.view" => format!("查看了{object} 的档案"),
        "elder.update" => format!("修改了{object} 的档案"),
        _ => format!("{what}{object}"),
    };
    let v: serde_json::Value = serde_json::from_str(detail).unwrap_or_default();
    let more = detail_words(action, &v);
    if more.is_empty() {
        format!("{actor} {verb}")
    } else {
        format!("{actor} {verb}（{more}）")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_as_sentences() {
        assert_eq!(
            sentence(
                "县民政局 李科长",
                "entitlement.approve",
                "entitlement",
                Some("王**"),
                Some("高龄津贴"),
                r#"{"item":"longevity_allowance","note":""}"#
            ),
            "县民政局 李科长 批准了 王** 的高龄津贴"
        );
        assert_eq!(
            sentence(
                "李科长",
                "payment.batch",
                "payment_batch",
                None,
                None,
                r#"{"total_fen":18750000}"#
            ),
            "李科长 生成发放批次（金额 187500.00 元）"
        );
        assert_eq!(
            sentence(
                "周审计",
                "auth.login",
                "session",
                None,
                None,
                r#"{"factors":["password"]}"#
            ),
            "周审计 登录（验证方式：密码）"
        );
        assert!(
            sentence(
                "x",
                "elder.reveal",
                "elder",
                Some("张*"),
                None,
                r#"{"reason":"核对身份"}"#
            )
            .contains("查看了 张* 的完整信息（事由：核对身份）")
        );
    }
}
