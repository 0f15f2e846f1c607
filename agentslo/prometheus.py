"""The one Prometheus query client: instant queries over the HTTP API, synchronous or asynchronous.

    from agentslo.prometheus import PrometheusClient, PrometheusError

    client = PrometheusClient("http://prometheus:9090", timeout=5)
    try:
        for sample in client.query('agent_slo:release_state:code{agent="cx-support"}'):
            print(sample.labels["slo"], sample.labels["flow"], sample.value)
    except PrometheusError as exc:
        print(exc)  # says which Prometheus, which query and what went wrong

The release gate (a CLI) calls `query`, over urllib; the SLO review (`report`, `suggest`, `backtest`)
reads history with `query_range` (a range query: the expression at every step) and `query_matrix`
(a range selector's raw samples), also over urllib; the exporter's autonomy API awaits `aquery`,
over aiohttp, on the event loop. Both share everything but the transport: the URL, the headers
(a bearer token or basic auth) and the TLS settings (a CA bundle, or no verification) are built
here once, and every answer is checked and parsed by the same code. Failures are one of four
exceptions, all `PrometheusError`:

- `PrometheusUnreachable`: no answer (connection refused, DNS, TLS, timeout, a dropped connection);
- `PrometheusHTTPError`: an HTTP error status without an API error in the body (a proxy's 502, a 401);
- `PrometheusQueryError`: Prometheus refused or failed the query (`"status": "error"`: a PromQL
  syntax error is `bad_data`, an evaluation timeout `timeout`), whatever the HTTP status;
- `PrometheusBadResponse`: an answer that is not the API's JSON (an HTML page, a truncated body),
  or a result that is not an instant vector or scalar.

An instant vector becomes a list of `Sample(labels, value, timestamp)`; values are floats exactly as
Prometheus wrote them (`NaN`, `+Inf` included), so callers decide what a NaN means to them.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple, TypeVar

import aiohttp
import orjson

from agentslo import __version__

DEFAULT_TIMEOUT_S: Final = 10.0
QUERY_PATH: Final = "/api/v1/query"
QUERY_RANGE_PATH: Final = "/api/v1/query_range"
# Prometheus refuses a range query of more than 11,000 points per series; callers pick a step under it.
MAX_POINTS_PER_SERIES: Final = 11_000
_T = TypeVar("_T")


class PrometheusError(RuntimeError):
    """A query could not be answered; the message names the Prometheus, the query and the cause."""

    def __init__(self, message: str, *, url: str, query: str) -> None:
        super().__init__(message)
        self.url = url
        self.query = query


class PrometheusUnreachable(PrometheusError):
    """No answer at all: connection refused, name not resolved, TLS failure, timeout."""


class PrometheusHTTPError(PrometheusError):
    """An HTTP error status whose body is not a Prometheus API error (a proxy, an auth gateway)."""

    def __init__(self, message: str, *, url: str, query: str, status: int) -> None:
        super().__init__(message, url=url, query=query)
        self.status = status


class PrometheusQueryError(PrometheusError):
    """Prometheus answered `"status": "error"`: it refused (bad_data) or failed (timeout) the query."""

    def __init__(self, message: str, *, url: str, query: str, error_type: str) -> None:
        super().__init__(message, url=url, query=query)
        self.error_type = error_type


class PrometheusBadResponse(PrometheusError):
    """An answer that is not a usable Prometheus API response."""


class Sample(NamedTuple):
    """One element of an instant vector (a scalar result is one sample without labels)."""

    labels: Mapping[str, str]
    value: float
    timestamp: float


class Series(NamedTuple):
    """One series of a range query (or of a range selector): its labels and (unix time, value) points,
    oldest first."""

    labels: Mapping[str, str]
    points: list[tuple[float, float]]


class PrometheusClient:
    """Instant queries against one Prometheus (or anything serving its HTTP API: Thanos, Mimir, VM).

    `url` is the base URL, path prefix included (`http://host/prometheus`). `timeout` bounds each
    query in seconds. Authenticate with `token` (bearer) or `basic_auth` (user, password); verify TLS
    with `ca_file`, or not at all with `insecure`. Call `aclose()` when done with `aquery`.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        ca_file: str | None = None,
        insecure: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = {"User-Agent": f"agent-slo/{__version__}", "Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif basic_auth:
            pair = base64.b64encode(":".join(basic_auth).encode()).decode()
            self.headers["Authorization"] = f"Basic {pair}"
        self._ca_file = ca_file
        self._insecure = insecure
        self._ssl: ssl.SSLContext | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- shared by both transports ---

    def params(self, promql: str, at: float | None = None) -> dict[str, str]:
        """The query parameters of an instant query (evaluated now, or at `at`, Unix seconds)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = repr(float(at))
        return params

    def query_url(self, promql: str, at: float | None = None) -> str:
        """The full GET URL of an instant query."""
        return f"{self.url}{QUERY_PATH}?{urllib.parse.urlencode(self.params(promql, at))}"

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.create_default_context(cafile=self._ca_file)
            if self._insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._ssl = context
        return self._ssl

    def _unreachable(self, promql: str, exc: BaseException) -> PrometheusUnreachable:
        reason = getattr(exc, "reason", None) or exc  # urllib wraps the socket error in URLError
        detail = str(reason) or type(reason).__name__  # a timeout's message can be empty
        return PrometheusUnreachable(
            f"Prometheus at {self.url} could not be reached: {detail}", url=self.url, query=promql
        )

    def _samples(self, status: int, body: bytes, promql: str) -> list[Sample]:
        """Check an answer and parse its instant result (or raise the PrometheusError saying why not)."""
        return self._parsed(status, body, promql, _parse_result)

    def _parsed(self, status: int, body: bytes, promql: str, parse: Callable[[Any], _T]) -> _T:
        """Check an answer and hand its `data` to `parse` (or raise the PrometheusError saying why not)."""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        if isinstance(payload, dict) and payload.get("status") == "error":
            error_type = str(payload.get("errorType", "error"))
            raise PrometheusQueryError(
                f"Prometheus at {self.url} refused {promql!r} (HTTP {status}, {error_type}): "
                f"{payload.get('error')}",
                url=self.url,
                query=promql,
                error_type=error_type,
            )
        if status != 200:
            excerpt = body[:200].decode("utf-8", "replace").strip()
            raise PrometheusHTTPError(
                f"Prometheus at {self.url} answered HTTP {status} to {promql!r}"
                + (f": {excerpt}" if excerpt else ""),
                url=self.url,
                query=promql,
                status=status,
            )
        if not isinstance(payload, dict) or payload.get("status") != "success":
            raise PrometheusBadResponse(
                f"Prometheus at {self.url} answered {promql!r} with something that is not a Prometheus "
                f"API response (is {self.url} the Prometheus base URL?): {body[:120]!r}",
                url=self.url,
                query=promql,
            )
        try:
            return parse(payload["data"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise PrometheusBadResponse(
                f"Prometheus at {self.url} answered {promql!r} with an unusable result: {exc}",
                url=self.url,
                query=promql,
            ) from None

    # --- synchronous: urllib ---

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """Run an instant query and return its samples (blocking)."""
        status, body = self._get(QUERY_PATH, self.params(promql, at), promql)
        return self._samples(status, body, promql)

    def _get(self, path: str, params: Mapping[str, str], promql: str) -> tuple[int, bytes]:
        """GET `path` with `params` (blocking); an error status is an answer, no answer raises."""
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers=self.headers)
        try:
            context = self._ssl_context() if self.url.startswith("https:") else None
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:  # an answer, with an error status: the body says more
            return exc.code, exc.read()
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, dropped connections
            raise self._unreachable(promql, exc) from None

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        """Evaluate `promql` at `start`, `start + step`, ... up to `end` (one range query, blocking).

        Each step is the instant query at that time, so a range query of a rule's expression gives
        exactly what the rule would have recorded at those times. Prometheus refuses more than
        `MAX_POINTS_PER_SERIES` steps; `history` splits longer ranges."""
        params = {
            "query": promql,
            "start": repr(float(start)),
            "end": repr(float(end)),
            "step": repr(float(step)),
        }
        status, body = self._get(QUERY_RANGE_PATH, params, promql)
        return self._parsed(status, body, promql, _parse_matrix)

    def query_matrix(self, promql: str, at: float | None = None) -> list[Series]:
        """An instant query whose result is a range vector (`metric[1h]`): the raw stored samples."""
        status, body = self._get(QUERY_PATH, self.params(promql, at), promql)
        return self._parsed(status, body, promql, _parse_matrix)

    # --- asynchronous: aiohttp ---

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            tls: ssl.SSLContext | bool = self._ssl_context() if self.url.startswith("https:") else True
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                connector=aiohttp.TCPConnector(ssl=tls),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    async def aquery(self, promql: str, at: float | None = None) -> list[Sample]:
        """Run an instant query and return its samples, without blocking the event loop."""
        try:
            async with self._client().get(f"{self.url}{QUERY_PATH}", params=self.params(promql, at)) as resp:
                status, body = resp.status, await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(promql, exc) from None
        return self._samples(status, body, promql)

    async def aclose(self) -> None:
        """Close the connection pool `aquery` opened (if any)."""
        if self._session is not None:
            await self._session.close()


def _parse_result(data: Any) -> list[Sample]:
    """An instant query's `data`: a vector's samples, or a scalar as one sample without labels."""
    kind, result = data["resultType"], data["result"]
    # Values come as strings ("1.5", "NaN", "+Inf"), each as [unix time, value].
    if kind == "vector":
        return [
            Sample(dict(item["metric"]), float(item["value"][1]), float(item["value"][0])) for item in result
        ]
    if kind == "scalar":
        return [Sample({}, float(result[1]), float(result[0]))]
    raise ValueError(f"a {kind} result, where an instant vector or a scalar was expected")


def _parse_matrix(data: Any) -> list[Series]:
    """A range query's (or a range selector's) `data`: a matrix of series with [time, "value"] points."""
    if data["resultType"] != "matrix":
        raise ValueError(f"a {data['resultType']} result, where a range vector (matrix) was expected")
    return [
        Series(dict(item["metric"]), [(float(t), float(v)) for t, v in item["values"]])
        for item in data["result"]
    ]
