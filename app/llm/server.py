"""llama.cpp's OpenAI-compatible server (llama-cpp-python's `python -m llama_cpp.server`) for one GGUF, run as a
child process in the foreground: what `localrag llm serve` does. Its clients are `OpenAICompatLLM`s."""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from localrag.app.llm.base import LLMError

__all__ = ["SERVER_MODULES", "LlamaServer", "ServerExit", "missing_server_modules"]

# what `python -m llama_cpp.server` imports: llama-cpp-python's [server] extra
SERVER_MODULES = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context")


def missing_server_modules() -> list[str]:
    """The server's modules that are not installed (empty when it can run)."""
    return [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]


@dataclass(frozen=True)
class ServerExit:
    """How the server ended: its exit status, and whether Ctrl-C stopped it."""

    returncode: int
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """Ended normally or by a signal this side sent (Ctrl-C, SIGTERM)."""
        return self.interrupted or self.returncode in (0, -signal.SIGTERM, -signal.SIGINT)


@dataclass(frozen=True)
class LlamaServer:
    """One GGUF served over HTTP. `n_threads` None leaves llama.cpp's default; `prompt_lookup` > 0 turns on prompt
    lookup decoding with that many draft tokens; `api_key` makes the server require it."""

    gguf: Path
    host: str = "127.0.0.1"
    port: int = 8080
    n_ctx: int = 4096
    n_threads: int | None = None
    n_gpu_layers: int = 0
    prompt_lookup: int = 0
    api_key: str | None = None

    @property
    def model_name(self) -> str:
        """The name clients ask for (the server's model alias): the file name without .gguf."""
        return self.gguf.stem

    @property
    def url(self) -> str:
        """The base URL a client on this machine configures (llm_base_url)."""
        shown = "[::1]" if self.host == "::1" else ("127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host)
        return f"http://{shown}:{self.port}/v1"

    def command(self) -> list[str]:
        """The child process's command line."""
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--model_alias", self.model_name,
               "--host", self.host, "--port", str(self.port), "--n_ctx", str(self.n_ctx),
               "--n_gpu_layers", str(self.n_gpu_layers), "--verbose", "False"]
        if self.n_threads is not None:
            cmd += ["--n_threads", str(self.n_threads)]
        if self.prompt_lookup > 0:
            cmd += ["--draft_model", "prompt-lookup-decoding", "--draft_model_num_pred_tokens", str(self.prompt_lookup)]
        if self.api_key:
            cmd += ["--api_key", self.api_key]
        return cmd

    def check_port(self) -> None:
        """LLMError when the address cannot be listened on (taken, or not this machine's)."""
        with socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET) as probe:
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                raise LLMError(f"cannot listen on {self.host}:{self.port} ({exc.strerror}): pick another --port, "
                               "or stop what is using it") from None

    def run(self) -> ServerExit:
        """Run the server until it exits. SIGTERM to this process is passed on (so stopping the command stops the
        server); Ctrl-C reaches both, and this side waits for the server to finish."""
        proc = subprocess.Popen(self.command())
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signum))
        try:
            return ServerExit(proc.wait())
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            return ServerExit(proc.wait(), interrupted=True)
        finally:
            signal.signal(signal.SIGTERM, previous)
