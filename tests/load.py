"""A steady stream of inference requests through an endpoint's split, in a
thread, counting the answers by the deployment that served them (the
`azureml-model-deployment` header the endpoint answers with)."""

import collections
import threading
import time

import httpx

BODY = {
    "inputs": [
        {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [10, 20, 30, 40]},
    ]
}


class Load:
    def __init__(self, url: str, headers: dict, *, per_second: float = 40.0, threads: int = 3):
        self.url, self.headers, self.pause = url, headers, threads / per_second
        self.answers: collections.Counter = collections.Counter()
        self.failures: collections.Counter = collections.Counter()
        self.timeline: list[tuple[float, str, int]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self._lock = threading.Lock()

    def _run(self) -> None:
        with httpx.Client(timeout=10, headers=self.headers) as client:
            while not self._stop.is_set():
                try:
                    answer = client.post(self.url, json=BODY)
                except httpx.HTTPError:
                    served, status = "?", 0
                else:
                    served, status = answer.headers.get("azureml-model-deployment", "?"), answer.status_code
                with self._lock:
                    self.answers[served] += 1
                    if status != 200:
                        self.failures[served] += 1
                    self.timeline.append((time.monotonic(), served, status))
                self._stop.wait(self.pause)

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
