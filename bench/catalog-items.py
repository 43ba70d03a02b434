#!/usr/bin/env python3
"""Write a 20-item catalogue (JSON, as `yiyang catalog publish` reads it) for the evaluation bench:
the demo county's six items and fourteen more that use every field of the rule language."""
import json, sys

def item(code, name, kind, rule, tiers, no_app=True, funding=None):
    return {
        "code": code, "name": name, "category": "基准测试", "benefit_kind": kind,
        "provision": name, "standard": "", "department": "县民政局",
        "funding": funding or {"county": 100}, "no_application": no_app, "rule": rule,
        "tiers": [{"label": l, "rule": r, "amount": a, "quota": q} for (l, r, a, q) in tiers],
    }

items = [
    item("longevity_allowance", "高龄津贴", "cash_monthly", "状态 = 在册 且 年龄 >= 80",
         [("80–89周岁", "年龄 < 90", 50, 0), ("90–99周岁", "年龄 < 100", 100, 0), ("100周岁及以上", None, 300, 0)]),
    item("care_subsidy", "护理补贴", "cash_monthly",
         "状态 = 在册 且 经济状况 属于 [特困, 低保, 低保边缘] 且 能力等级 >= 中度失能",
         [("重度及以上", "能力等级 >= 重度失能", 200, 0), ("中度", None, 100, 0)], no_app=False),
    item("purchased_home_service", "政府购买居家服务", "service_monthly",
         "状态 = 在册 且 (经济状况 属于 [特困, 低保] 或 (年龄 >= 80 且 居住状况 属于 [独居, 空巢]))",
         [("失能", "能力等级 >= 中度失能", 120, 4), ("一般", None, 50, 2)], no_app=False),
    item("care_visit", "探访关爱", "service_monthly",
         "状态 = 在册 且 (居住状况 属于 [独居, 空巢, 留守] 或 计生特殊家庭 属于 [失独, 伤残] 或 能力等级 >= 中度失能 或 经济状况 属于 [特困, 低保])",
         [("每月探访", None, 0, 1)]),
    item("home_adaptation", "适老化改造", "one_off",
         "状态 = 在册 且 经济状况 属于 [特困, 低保, 低保边缘] 且 (能力等级 >= 轻度失能 或 年龄 >= 80)",
         [("每户", None, 1000, 0)], no_app=False),
    item("family_care_bed", "家庭养老照护床位", "service_monthly", "状态 = 在册 且 能力等级 >= 重度失能",
         [("每床", None, 300, 8)], no_app=False),
    item("centenarian_gift", "百岁老人慰问", "one_off", "状态 = 在册 且 年龄 >= 100", [("每人", None, 2000, 0)]),
    item("veteran_care", "优抚对象养老补助", "cash_monthly", "状态 = 在册 且 优抚对象 = 是 且 年龄 >= 60",
         [("每人", None, 80, 0)]),
    item("severe_disability", "重度残疾老人护理补贴", "cash_monthly", "状态 = 在册 且 残疾等级 <= 2",
         [("一级", "残疾等级 = 1", 150, 0), ("二级", None, 100, 0)]),
    item("family_planning", "计生特殊家庭扶助", "cash_monthly", "状态 = 在册 且 计生特殊家庭 属于 [失独, 伤残]",
         [("失独", "计生特殊家庭 = 失独", 500, 0), ("伤残", None, 400, 0)]),
    item("extreme_poverty_care", "特困供养照料", "service_monthly", "状态 = 在册 且 经济状况 = 特困",
         [("失能", "能力等级 >= 中度失能", 600, 8), ("自理", None, 200, 2)], no_app=False),
    item("minimum_living_top_up", "低保老人生活补助", "cash_monthly", "状态 = 在册 且 经济状况 = 低保 且 年龄 >= 70",
         [("每人", None, 60, 0)]),
    item("alone_80_call", "高龄独居电话问候", "service_monthly", "状态 = 在册 且 年龄 >= 80 且 居住状况 = 独居",
         [("每周", None, 0, 4)]),
    item("left_behind_visit", "留守老人关爱", "service_monthly", "状态 = 在册 且 居住状况 = 留守",
         [("每月", None, 0, 2)]),
    item("town_meal_aid", "石庄镇助餐补贴", "cash_monthly", "状态 = 在册 且 年龄 >= 75 且 居住地 位于 320682110000",
         [("每人", None, 30, 0)]),
    item("hukou_health_check", "户籍老人免费体检", "one_off", "状态 = 在册 且 年龄 >= 65 且 户籍地 位于 320682",
         [("每人", None, 150, 0)]),
    item("women_screening", "老年女性健康筛查", "one_off", "状态 = 在册 且 性别 = 女 且 年龄 属于 [65, 70, 75]",
         [("每人", None, 100, 0)]),
    item("old_cohort_bonus", "建国前出生老人慰问", "one_off", "状态 = 在册 且 出生日期 < '1949-10-01'",
         [("每人", None, 500, 0)]),
    item("ability_unknown_80", "高龄未评估提醒服务", "service_monthly", "状态 = 在册 且 年龄 >= 80 且 非 能力等级 >= 0",
         [("每月", None, 0, 1)]),
    item("not_with_children_disabled", "失能非同住老人喘息服务", "service_monthly",
         "状态 = 在册 且 能力等级 >= 中度失能 且 非 居住状况 = 与子女同住",
         [("每月", None, 200, 2)], no_app=False),
]
assert len(items) == 20
json.dump(items, open(sys.argv[1], "w"), ensure_ascii=False, indent=1)
