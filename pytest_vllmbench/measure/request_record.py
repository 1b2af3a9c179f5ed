"""What one request did: the record every engine returns, one per request."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RequestRecord:
    """What one request did. Times are seconds; `text` stays in memory and is never saved."""

    custom_id: str
    input_tokens: int = 0
    output_tokens: int = 0
    e2el_s: float | None = None
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    error: str | None = None
    text: str | None = None
    finish_reason: str | None = None
    done_at: float | None = None  # when it completed, on its engine's monotonic clock: the steady-state rate

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tpot_s(self) -> float | None:
        if self.e2el_s is None or self.ttft_s is None or self.output_tokens < 2:
            return None
        return (self.e2el_s - self.ttft_s) / (self.output_tokens - 1)
