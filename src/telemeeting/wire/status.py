"""The ytx status-code table (spec §4) and the error type that carries one."""

from __future__ import annotations

from enum import Enum


class Status(Enum):
    """Every status code of the contract, with its exact Chinese message."""

    OK = ("0", "提交成功")
    INVALID_NUMBER = ("-1", "号码无效")
    MISSING_PARAMETER = ("-2", "缺少必要参数")
    INVALID_ACTION = ("-3", "无效action")
    INVALID_JSON = ("-4", "无效的JSON")
    INTERNAL_ERROR = ("-100", "异常错误")
    INVALID_PARAMETER = ("-101", "参数不合法")
    INVALID_PHONE = ("-102", "电话号码不合法")
    RATE_LIMITED = ("-104", "请求频率过高")
    #: **extension**: -104 with its own message, when the server has as many requests in flight
    #: as it takes (`[server] max_in_flight`); `from_code("-104")` is RATE_LIMITED.
    OVERLOADED = ("-104", "服务器繁忙，请稍后重试")
    #: **extension**: -104 with its own message, when the database could not be reached (a
    #: connection lost, PostgreSQL restarting, SQLite locked by another process beyond the lock
    #: wait). -104 because it is the one code a client of the real platform already backs off
    #: and retries on; nothing of the request was done, unless the connection died during the
    #: COMMIT itself (docs/api.md: retry with the same Idempotency-Key to be sure).
    DATABASE_UNAVAILABLE = ("-104", "数据库暂不可用，请稍后重试")
    UNKNOWN_ACCOUNT = ("-200", "无此用户")
    ACCOUNT_DISABLED = ("-201", "用户状态失效")
    BAD_AUTHORIZATION = ("-202", "包头验证信息错误")
    BAD_SIGN = ("-203", "AuthToken验证失败")
    NO_BALANCE = ("-204", "账户余额不足")
    APP_CHECK_FAILED = ("-205", "应用验证失败")
    MEETING_NOT_FOUND = ("-300", "会议不存在")
    MEETING_ENDED = ("-301", "会议已结束")
    MEETING_FULL = ("-302", "会议人数已满")
    MEMBER_ALREADY_IN = ("-303", "成员已在会议中")
    MEMBER_NOT_FOUND = ("-304", "成员不存在")

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def message(self) -> str:
        return self.value[1]

    @classmethod
    def from_code(cls, code: str) -> Status | None:
        return _BY_CODE.get(str(code))


_BY_CODE: dict[str, Status] = {}
for _status in Status:
    _BY_CODE.setdefault(_status.code, _status)  # a code's first member is the contract's


def _codes(*members: Status) -> frozenset[str]:
    return frozenset(member.code for member in members)


# The families a client reacts to as one (the SDK raises one exception class per family). They
# are written here, next to the codes, so that the SDK never re-types a code.
#: Account, signature, balance or app refused: retrying the same request will not help.
AUTH_CODES = _codes(
    Status.UNKNOWN_ACCOUNT,
    Status.ACCOUNT_DISABLED,
    Status.BAD_AUTHORIZATION,
    Status.BAD_SIGN,
    Status.NO_BALANCE,
    Status.APP_CHECK_FAILED,
)
#: A parameter is missing or malformed: the request must be fixed.
VALIDATION_CODES = _codes(Status.MISSING_PARAMETER, Status.INVALID_PARAMETER, Status.INVALID_PHONE)
#: The meeting or member is not in a state that allows the action.
MEETING_CODES = _codes(
    Status.MEETING_NOT_FOUND,
    Status.MEETING_ENDED,
    Status.MEETING_FULL,
    Status.MEMBER_ALREADY_IN,
    Status.MEMBER_NOT_FOUND,
)
#: Refused for now (rate limit, overload, database unavailable): the same request may be sent
#: again later. A client cannot tell these apart by code, only by message, and need not.
RETRY_LATER_CODES = _codes(Status.RATE_LIMITED, Status.OVERLOADED, Status.DATABASE_UNAVAILABLE)


class WireError(Exception):
    """A request outcome other than success; `detail` is for logs, never for the client."""

    def __init__(self, status: Status, detail: str = "") -> None:
        super().__init__(f"{status.code} {status.message}" + (f": {detail}" if detail else ""))
        self.status = status
        self.detail = detail
