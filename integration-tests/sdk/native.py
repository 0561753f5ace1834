"""Drives gpt-load's native routes with the vendors' official Python SDKs: only the base URL and
the key change from talking to the vendors, and the model picks the group.

Usage: native.py BASE_URL ACCESS_KEY — groups on a mock upstream answering "echo: <last user
text>" must serve: `gpt-4o` and `text-embedding-3-small` (openai), `gpt-4.1` (openai-response),
`claude-*` (anthropic), `gemini-*` (gemini). Prints one line per check and `ALL OK` at the end.
"""
import sys

base, key = sys.argv[1], sys.argv[2]

import openai

oc = openai.OpenAI(api_key=key, base_url=f"{base}/v1", max_retries=0)
r = oc.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi there"}])
assert r.choices[0].message.content == "echo: hi there", r
print("openai chat ok")
parts = []
for ch in oc.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "stream me"}], stream=True):
    if ch.choices and ch.choices[0].delta.content:
        parts.append(ch.choices[0].delta.content)
assert "".join(parts) == "echo: stream me", parts
print("openai chat stream ok")
e = oc.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
assert len(e.data) == 2
print("openai embeddings ok")
r = oc.responses.create(model="gpt-4.1", input="resp")
assert r.output_text == "echo: resp", r
with oc.responses.stream(model="gpt-4.1", input="rs") as st:
    deltas = [e.delta for e in st if e.type == "response.output_text.delta"]
assert "".join(deltas) == "echo: rs", deltas
print("openai responses ok")
ids = sorted(m.id for m in oc.models.list())
assert "gpt-4o" in ids and "gpt-4.1" in ids, ids
print("openai models ok", ids)
try:
    oc.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("an unserved model must be refused")
except openai.NotFoundError as err:
    assert "no-such-model" in str(err), err
    print("openai unserved model refused ok")
try:
    openai.OpenAI(api_key="sk-gl-wrong", base_url=f"{base}/v1", max_retries=0).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("a wrong key must be refused")
except openai.AuthenticationError:
    print("openai wrong key refused ok")

import anthropic

ac = anthropic.Anthropic(api_key=key, base_url=base, max_retries=0)
r = ac.messages.create(model="claude-sonnet-4-20250514", max_tokens=10, messages=[{"role": "user", "content": "yo"}])
assert r.content[0].text == "echo: yo", r
with ac.messages.stream(model="claude-sonnet-4-20250514", max_tokens=10, messages=[{"role": "user", "content": "st"}]) as st:
    text = "".join(st.text_stream)
assert text == "echo: st", text
n = ac.messages.count_tokens(model="claude-sonnet-4-20250514", messages=[{"role": "user", "content": "count me"}])
assert n.input_tokens > 0, n
assert [m.id for m in ac.models.list()] == ["claude-sonnet-4-20250514"]
try:
    anthropic.Anthropic(api_key="sk-gl-wrong", base_url=base, max_retries=0).messages.create(
        model="claude-sonnet-4-20250514", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    raise AssertionError("a wrong key must be refused")
except anthropic.AuthenticationError:
    pass
print("anthropic ok")

from google import genai
from google.genai import types

g = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base))
r = g.models.generate_content(model="gemini-2.0-flash", contents="gem")
assert r.text == "echo: gem", r
chunks = [c.text or "" for c in g.models.generate_content_stream(model="gemini-2.0-flash", contents="gs")]
assert "".join(chunks) == "echo: gs", chunks
print("genai ok")
print("ALL OK")
