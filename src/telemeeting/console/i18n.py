"""The console's two languages: English and Simplified Chinese.

Pages are written in English and `_()` looks each text up in the Chinese table, falling back to
English for a text without a translation (never an error). The language is the one
the user switched to (a cookie), else the best of the browser's `Accept-Language`.
"""

from __future__ import annotations

from collections.abc import Callable

EN = "en"
ZH = "zh-CN"
LANGUAGES = (EN, ZH)
LANGUAGE_COOKIE = "tm_lang"

ZH_CN: dict[str, str] = {
    "Telemeeting console": "Telemeeting 控制台",
    "Log in": "登录",
    "Log out": "退出",
    "Account holder": "账户持有人",
    "Operator": "运营人员",
    "Account SID": "账户 SID",
    "Auth token": "授权令牌",
    "User name": "用户名",
    "Password": "密码",
    "Overview": "概览",
    "Meetings": "会议",
    "Meeting": "会议",
    "Pushes": "推送",
    "CDRs": "话单",
    "Apps": "应用",
    "Accounts": "账户",
    "Audit log": "操作日志",
    "Live meetings": "进行中的会议",
    "Calls in progress": "通话中",
    "Pushes pending": "待推送",
    "Pushes dead": "推送失败",
    "Balance": "余额",
    "billing off": "未计费",
    "State": "状态",
    "App": "应用",
    "Environment": "环境",
    "From": "开始日期",
    "To": "结束日期",
    "Filter": "筛选",
    "any": "全部",
    "active": "进行中",
    "booked": "预约",
    "ended": "已结束",
    "production": "正式",
    "sandbox": "测试",
    "Name": "名称",
    "Room": "会议号",
    "Created": "创建时间",
    "Ended": "结束时间",
    "Members": "成员",
    "Previous": "上一页",
    "Next": "下一页",
    "No rows.": "没有记录。",
    "Phone": "电话",
    "stateDesc": "状态说明",
    "Joined": "入会时间",
    "Left": "离会时间",
    "Muted": "静音",
    "yes": "是",
    "no": "否",
    "Invite": "邀请",
    "Mute": "静音",
    "Unmute": "取消静音",
    "Kick": "踢出",
    "End meeting": "结束会议",
    "Create meeting": "创建会议",
    "Meeting name": "会议名称",
    "Event history": "事件记录",
    "Kind": "类型",
    "Delivery": "投递",
    "Attempts": "尝试次数",
    "Time": "时间",
    "HTTP status": "HTTP 状态",
    "Latency": "耗时",
    "Error": "错误",
    "Outcome": "结果",
    "Redeliver": "重新推送",
    "Redeliver all dead": "重新推送全部失败事件",
    "Event": "事件",
    "Body": "内容",
    "pending": "待推送",
    "delivered": "已送达",
    "dead": "失败",
    "stored": "仅存储",
    "Export CSV": "导出 CSV",
    "Called": "被叫",
    "Charge": "费用",
    "Duration": "时长",
    "Callback URL": "回调地址",
    "IP whitelist": "IP 白名单",
    "Online": "上线",
    "Offline": "下线",
    "online": "在线",
    "offline": "离线",
    "Save": "保存",
    "Create app": "创建应用",
    "Create account": "创建账户",
    "Disable": "停用",
    "Enable": "启用",
    "enabled": "启用",
    "disabled": "停用",
    "Top up": "充值",
    "Amount": "金额",
    "Who": "操作人",
    "What": "操作",
    "Target": "对象",
    "Detail": "详情",
    "When": "时间",
    "Not found": "未找到",
    "Forbidden": "无权访问",
    "Back": "返回",
    "Done.": "已完成。",
    "Wrong SID or token.": "SID 或令牌错误。",
    "Wrong user name or password.": "用户名或密码错误。",
    "Too many failed logins; try again in a few minutes.": "登录失败次数过多，请几分钟后再试。",
    "Your session has ended; please log in again.": "会话已结束，请重新登录。",
    "The form has expired (CSRF token missing or wrong); reload the page and try again.": (
        "表单已失效（CSRF 令牌缺失或错误），请刷新页面后重试。"
    ),
    "Live": "实时",
    "Connecting…": "连接中…",
    "Account": "账户",
    "Language": "语言",
    "Attempts of this event": "本事件的投递尝试",
    "No attempts yet.": "尚无投递尝试。",
    "Top up balance": "充值余额",
    "The meeting has ended.": "会议已结束。",
    "Meeting not found.": "未找到会议。",
    "That member is not in the meeting.": "该成员不在会议中。",
    "That member is already in the meeting.": "该成员已在会议中。",
    "The meeting is full.": "会议已满。",
    "Not a valid phone number.": "电话号码无效。",
    "A name has at most 64 characters.": "名称最多 64 个字符。",
    "Something went wrong; the change was not made.": "出错了，操作未执行。",
    "Invite a party": "邀请成员",
    "Page": "页",
    "Session": "会话",
    "page not found": "页面不存在",
    "Phone number": "电话号码",
    "Balance after": "变更后余额",
    "Requeued": "已重新排队",
    "Not a number.": "不是数字。",
    "Not a date (YYYY-MM-DD).": "不是日期（YYYY-MM-DD）。",
    "operator": "运营人员",
    "holder": "账户持有人",
    "cli": "命令行",
    "env must be production or sandbox": "环境必须是正式或测试",
    "This push is only stored, never sent (sandbox or no callback URL).": (
        "此事件仅存储、不推送（测试环境或未设置回调地址）。"
    ),
}


def negotiate(accept_language: str | None) -> str:
    """The best of our two languages for an `Accept-Language` header (English by default)."""
    best, best_q = EN, -1.0
    for item in (accept_language or "").split(","):
        tag, _, params = item.strip().partition(";")
        tag = tag.strip().lower()
        if not tag:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        language = ZH if tag.startswith("zh") else EN if tag.startswith("en") else None
        if language is not None and q > 0 and q > best_q:  # q=0: "not this one"
            best, best_q = language, q
    return best


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The switch's choice (a cookie), else the best of the browser's languages."""
    if cookie in LANGUAGES:
        return cookie
    return negotiate(accept_language)


def translator(language: str) -> Callable[[str], str]:
    if language == ZH:
        return lambda text: ZH_CN.get(text, text)
    return lambda text: text
