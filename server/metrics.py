"""Prometheus metrics: per-stage turn latency, sessions, responses and errors."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

LATENCY_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # CPU seconds and resident memory of the server process, which the benchmark samples.
        ProcessCollector(registry=self.registry)
        self.stage_latency = Histogram(
            "tingshuo_turn_stage_seconds",
            "Time from the end of user speech (or the turn start) to each pipeline stage",
            ["stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.sessions_active = Gauge("tingshuo_sessions_active", "Open Realtime sessions", registry=self.registry)
        # Leak canaries: after sessions end, both must return to where they were.
        self.loop_tasks = Gauge("tingshuo_event_loop_tasks", "asyncio tasks alive in the server", registry=self.registry)
        self.threads = Gauge("tingshuo_threads", "Python threads alive in the server", registry=self.registry)
        self.sessions_rejected = Counter(
            "tingshuo_sessions_rejected_total", "Connections refused because the server was full", registry=self.registry
        )
        self.responses = Counter(
            "tingshuo_responses_total", "Responses by final status", ["status"], registry=self.registry
        )
        self.clients_stalled = Counter(
            "tingshuo_clients_stalled_total", "Connections aborted because the client stopped reading",
            registry=self.registry)
        self.speculative_seconds = Counter(
            "tingshuo_speculative_seconds",
            "Engine seconds spent on work started before the user's turn was confirmed (early recognition, "
            "preemptive answers), by whether the turn used it", ["stage", "outcome"], registry=self.registry)
        self.barge_ins = Counter(
            "tingshuo_barge_ins_total", "Speech over an answer, which paused it, by verdict: 'confirmed' (the "
            "answer was cancelled) or 'resumed' (a false interruption: noise, a click, a backchannel)",
            ["verdict"], registry=self.registry)
        self.errors = Counter("tingshuo_error_events_total", "Error events sent, by code", ["code"], registry=self.registry)
        self.recorded_turns = Counter(
            "tingshuo_recorded_turns_total", "Finished turns handed to the training-data recorder (data.record), by "
            "outcome: 'written', 'dropped' (its queue was full) or 'failed' (the store could not be written)",
            ["outcome"], registry=self.registry)

        self.shared_state_errors = Counter(
            "tingshuo_shared_state_errors_total", "Calls to a shared-state service (state.backend) that failed, by "
            "service; the worker degraded instead (README \"Scaling out\")", ["service"], registry=self.registry)

    def observe_timeline(self, latency_ms: dict[str, float | None]) -> None:
        for stage, value in latency_ms.items():
            if value is not None:
                self.stage_latency.labels(stage=stage).observe(value / 1000)
