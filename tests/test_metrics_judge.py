import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from regionlm.eval.metrics.judge import (
    DIMENSIONS,
    HFCausalLMJudge,
    Judge,
    OpenAICompatibleJudge,
    aggregate_judge_scores,
    build_judge_messages,
    evaluate_descriptions,
    parse_judge_reply,
)

REPLY = """1. Subject Correspondence: 4
Explanation: the subject is right.
2. Appearance Description: 3
Explanation: the colour is wrong.
3. Temporal Description: 5
Explanation: the motion matches.
4. Hallucination Detection: 2
Explanation: it invents a second dog."""


def test_parse_official_format():
    assert parse_judge_reply(REPLY) == {
        "Subject Correspondence": 4.0,
        "Appearance Description": 3.0,
        "Temporal Description": 5.0,
        "Hallucination Detection": 2.0,
    }
    assert parse_judge_reply("1. Subject Correspondence: 1.2.3") is None  # float() fails -> error
    assert parse_judge_reply(None) is None
    assert parse_judge_reply("no scores here") == {}


def test_aggregate_means_over_items_that_have_the_dimension():
    parsed = [
        parse_judge_reply(REPLY),
        parse_judge_reply("1. Subject Correspondence: 2\n3. Temporal Description: 1"),
        parse_judge_reply("garbage"),
        None,
    ]
    agg = aggregate_judge_scores(parsed)
    assert agg["Subject Correspondence"] == 3.0
    assert agg["Appearance Description"] == 3.0
    assert agg["Temporal Description"] == 3.0
    assert agg["Hallucination Detection"] == 2.0
    assert agg["overall"] == pytest.approx((3 + 3 + 3 + 2) / 4)
    assert agg["counts"] == {"Subject Correspondence": 2, "Appearance Description": 1,
                             "Temporal Description": 2, "Hallucination Detection": 1}
    assert agg["n_unparseable"] == 2 and agg["unparseable"] == [2, 3]
    assert aggregate_judge_scores([None])["overall"] is None


def test_messages_follow_official_user_format():
    msgs = build_judge_messages("A dog runs.", "A cat sits.")
    assert msgs[0]["role"] == "system" and all(d in msgs[0]["content"] for d in DIMENSIONS)
    assert msgs[1] == {"role": "user", "content": "##Correct answer: A dog runs.\n##Predicted answer: A cat sits.\n"}


class CannedJudge:
    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = []

    def score(self, reference, prediction, meta=None):
        self.calls.append((reference, prediction, meta))
        return self.replies.pop(0)


def test_evaluate_descriptions_with_pluggable_judge():
    judge = CannedJudge([REPLY, "oops"])
    assert isinstance(judge, Judge)
    out = evaluate_descriptions([("ref a", "pred a", {"id": 1}), ("ref b", "pred b")], judge)
    assert judge.calls == [("ref a", "pred a", {"id": 1}), ("ref b", "pred b", None)]
    assert out["overall"] == pytest.approx(3.5)
    assert out["n_unparseable"] == 1 and out["replies"] == [REPLY, "oops"]


class _Handler(BaseHTTPRequestHandler):
    seen = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.seen.append((self.path, self.headers.get("Authorization"), body))
        if body["model"] == "broken":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"model crashed")
            return
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": REPLY}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    srv = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def test_openai_compatible_judge_round_trip(server):
    _Handler.seen.clear()
    judge = OpenAICompatibleJudge(server + "/", "judge-model", api_key="sk-test")
    reply = judge.score("A dog runs.", "A dog walks.")
    assert reply == REPLY
    path, auth, body = _Handler.seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
    assert body["model"] == "judge-model" and body["messages"][1]["content"].startswith("##Correct answer: A dog runs.")
    assert body["temperature"] == 0.7 and body["max_tokens"] == 800
    out = evaluate_descriptions([("a", "b")], judge)
    assert out["overall"] == pytest.approx(3.5)


def test_openai_compatible_judge_errors(server):
    with pytest.raises(ConnectionError, match="HTTP 500: model crashed"):
        OpenAICompatibleJudge(server, "broken").score("a", "b")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(ConnectionError, match="cannot reach the judge at http://127.0.0.1:%d/chat/completions" % port):
        OpenAICompatibleJudge(f"http://127.0.0.1:{port}", "m", timeout=5).score("a", "b")


def test_hf_judge_is_lazy_and_clear(tmp_path, monkeypatch):
    judge = HFCausalLMJudge(tmp_path / "missing")  # nothing happens at construction
    with pytest.raises(FileNotFoundError, match="does not exist"):
        judge.score("a", "b")
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as if not installed
    with pytest.raises(RuntimeError, match="pip install transformers"):
        HFCausalLMJudge(tmp_path).score("a", "b")
