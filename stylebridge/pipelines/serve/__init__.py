"""``stylebridge serve``: the web app.

:mod:`.backend` is the model cache and the requests (plain Python, no web framework);
:mod:`.app` builds the Gradio page on it (gradio is imported there, lazily).
"""

from stylebridge.pipelines.serve.backend import (
    Photo,
    RunRequest,
    RunResult,
    ServeBackend,
    ServeConfig,
    check_photo_file,
)

__all__ = ["Photo", "RunRequest", "RunResult", "ServeBackend", "ServeConfig",
           "check_photo_file"]
