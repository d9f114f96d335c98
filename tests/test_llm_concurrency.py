"""Many UI sessions, one OpenAI-compatible server: a shared client per (server, model) sends at most
llm_max_concurrency chat completions at once, and a slow server times out with a clear error.

The server is a real HTTP server on a local port (FakeOpenAIServer: canned answers, no model), so the limit is
measured where it matters, as requests in flight at the server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from localrag.app.config import Settings
from localrag.app.llm import LLMError, make_llm

MSG = [{"role": "user", "content": "How tall is the lighthouse?"}]
ANSWER = "Gannet Head Lighthouse is 31 metres tall [1]."


class FakeOpenAIServer:
    """A fake OpenAI-compatible server: /v1/models and /v1/chat/completions (whole or streamed), each completion
    taking `delay` seconds; it counts the completions in flight and the most seen at once."""

    def __init__(self, delay: float = 0.3) -> None:
        self.delay = delay
        self.in_flight = 0
        self.peak = 0
        self.served = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/v1/models":
                    self._send(200, {"data": [{"id": "fake-model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                with fake._lock:
                    fake.in_flight += 1
                    fake.peak = max(fake.peak, fake.in_flight)
                try:
                    time.sleep(fake.delay)
                    if body.get("stream"):
                        self.send_response(200)
                        self.send_header("Content-Type", "text/event-stream")
                        self.send_header("Connection", "close")
                        self.end_headers()
                        for word in ANSWER.split(" "):
                            chunk = {"choices": [{"delta": {"content": word + " "}, "finish_reason": None}]}
                            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.write(b"data: [DONE]\n\n")
                        self.close_connection = True
                    else:
                        self._send(200, {
                            "model": "fake-model",
                            "choices": [{"message": {"content": ANSWER}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 20, "completion_tokens": 9},
                        })
                finally:
                    with fake._lock:
                        fake.in_flight -= 1
                        fake.served += 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _settings(url: str, **kw: object) -> Settings:
    return Settings(llm_backend="openai", llm_base_url=url, llm_model="fake-model", **kw)


def test_concurrent_sessions_never_exceed_the_limit():
    with FakeOpenAIServer(delay=0.3) as server:
        # one LLM object per "UI session", as each session's Rag makes its own: they share one client and one limit
        llms = [make_llm(_settings(server.url, llm_max_concurrency=3, llm_timeout_s=30)) for _ in range(6)]
        errors: list[BaseException] = []
        texts: list[str] = []

        def session(i: int) -> None:
            llm = llms[i % len(llms)]
            try:
                if i % 2:
                    texts.append(llm.generate(MSG).text)
                else:
                    texts.append("".join(llm.stream(MSG)).strip())
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=session, args=(i,)) for i in range(12)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        elapsed = time.perf_counter() - t0
        assert not errors, errors
        assert texts == [ANSWER] * 12 or sorted(set(texts)) == [ANSWER], texts
        assert server.served == 12
        assert server.peak <= 3, f"{server.peak} completions at once with llm_max_concurrency=3"
        assert server.peak == 3, "the limit should still let 3 requests run side by side"
        assert elapsed >= 4 * 0.3 - 0.05  # 12 requests, 3 at a time, 0.3 s each
        assert len({id(llm._client) for llm in llms}) == 1 and llms[0].max_concurrency == 3
        for llm in llms:
            llm.close()
        assert llms[0]._client.is_closed  # closed with its last user


def test_a_slow_server_times_out_with_a_clear_error():
    with FakeOpenAIServer(delay=3.0) as server:
        llm = make_llm(_settings(server.url, llm_timeout_s=0.5))
        try:
            t0 = time.perf_counter()
            with pytest.raises(LLMError, match=r"did not answer within 0\.5 s \(llm_timeout_s\)"):
                llm.generate(MSG)
            with pytest.raises(LLMError, match=r"stopped sending for 0\.5 s \(llm_timeout_s\)"):
                list(llm.stream(MSG))
            assert time.perf_counter() - t0 < 2.5
        finally:
            llm.close()


def test_waiting_longer_than_the_timeout_for_a_slot_says_the_server_is_busy():
    with FakeOpenAIServer(delay=1.0) as server:
        llm = make_llm(_settings(server.url, llm_max_concurrency=1, llm_timeout_s=1.6))
        results: list[object] = []

        def call() -> None:
            try:
                results.append(llm.generate(MSG).text)
            except LLMError as exc:
                results.append(exc)

        try:
            threads = [threading.Thread(target=call) for _ in range(3)]
            for t in threads:
                t.start()
                time.sleep(0.05)
            for t in threads:
                t.join(30)
        finally:
            llm.close()
        answers = [r for r in results if r == ANSWER]
        busy = [r for r in results if isinstance(r, LLMError)]
        assert len(answers) == 2 and len(busy) == 1, results
        assert "busy" in str(busy[0]) and "llm_max_concurrency" in str(busy[0])
        assert server.peak == 1


def test_concurrent_asks_through_separate_rags_share_the_limit(sample_rag, embedder):
    """N concurrent `ask`s from N Rag objects (N UI sessions) on one data directory: at most the limit at the server,
    and every answer comes back."""
    from localrag.app.rag import Rag

    with FakeOpenAIServer(delay=0.2) as server:
        rags = [Rag.open(sample_rag.data_dir, embedder=embedder, llm_backend="openai", llm_base_url=server.url,
                         llm_model="fake-model", llm_max_concurrency=2, cache_enabled=False, score_answers=False)
                for _ in range(5)]
        answers: list[object] = []

        def ask(rag: Rag) -> None:
            try:
                answers.append(rag.ask("How tall is the Gannet Head lighthouse?", answer_mode="generative"))
            except BaseException as exc:  # noqa: BLE001
                answers.append(exc)

        try:
            threads = [threading.Thread(target=ask, args=(r,)) for r in rags]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
        finally:
            for r in rags:
                r.close()
        assert all(not isinstance(a, BaseException) for a in answers), answers
        assert len(answers) == 5 and server.served >= 5
        assert all(a.model_id == "fake-model" and a.sources for a in answers)
        assert 1 <= server.peak <= 2
