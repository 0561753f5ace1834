"""Drives gpt-load with the vendors' official Python SDKs (openai, anthropic, google-genai).

Usage: compat.py BASE_URL PROXY_KEY — BASE_URL is the gpt-load server; groups `oa` (openai),
`or` (openai-response), `an` (anthropic) and `gm` (gemini) must exist on a mock upstream that
answers "echo: <last user text>". Only the base URL and the key differ from talking to the vendor.
Prints one line per check and `ALL OK` at the end; any failure raises.
"""
import asyncio
import sys

base, key = sys.argv[1], sys.argv[2]

import openai

oc = openai.OpenAI(api_key=key, base_url=f"{base}/proxy/oa/v1", max_retries=0)
r = oc.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi there"}])
assert r.choices[0].message.content == "echo: hi there", r
assert r.usage.total_tokens > 0
print("openai chat ok")
parts = []
usage = None
for ch in oc.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "stream me"}], stream=True, stream_options={"include_usage": True}):
    if ch.choices and ch.choices[0].delta.content:
        parts.append(ch.choices[0].delta.content)
    if ch.usage:
        usage = ch.usage
assert "".join(parts) == "echo: stream me", parts
assert usage is not None
print("openai chat stream ok")
ids = [m.id for m in oc.models.list()]
assert ids, ids
print("openai models ok", ids)
e = oc.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
assert len(e.data) == 2
print("openai embeddings ok")
try:
    openai.OpenAI(api_key="wrong-key", base_url=f"{base}/proxy/oa/v1", max_retries=0).chat.completions.create(model="gpt-4o", messages=[])
    raise AssertionError("a wrong proxy key must be refused")
except openai.AuthenticationError:
    print("openai wrong key refused ok")

rc = openai.OpenAI(api_key=key, base_url=f"{base}/proxy/or/v1", max_retries=0)
r = rc.responses.create(model="gpt-4.1", input="resp")
assert r.output_text == "echo: resp", r
with rc.responses.stream(model="gpt-4.1", input="rs") as st:
    deltas = [e.delta for e in st if e.type == "response.output_text.delta"]
    final = st.get_final_response()
assert "".join(deltas) == "echo: rs" and final.output_text == "echo: rs", (deltas, final)
print("openai responses ok")

import anthropic

ac = anthropic.Anthropic(api_key=key, base_url=f"{base}/proxy/an", max_retries=0)
r = ac.messages.create(model="claude-sonnet-4-20250514", max_tokens=10, messages=[{"role": "user", "content": "yo"}])
assert r.content[0].text == "echo: yo", r
with ac.messages.stream(model="claude-sonnet-4-20250514", max_tokens=10, messages=[{"role": "user", "content": "st"}]) as st:
    text = "".join(st.text_stream)
    final = st.get_final_message()
assert text == "echo: st" and final.content[0].text == "echo: st", (text, final)
assert [m.id for m in ac.models.list()]
print("anthropic ok")

from google import genai
from google.genai import types

g = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=f"{base}/proxy/gm"))
r = g.models.generate_content(model="gemini-2.0-flash", contents="gem")
assert r.text == "echo: gem", r
chunks = [c.text or "" for c in g.models.generate_content_stream(model="gemini-2.0-flash", contents="gs")]
assert "".join(chunks) == "echo: gs", chunks
names = [m.name for m in g.models.list()]
assert names, names
print("genai ok", names[:3])


async def aio():
    r = await g.aio.models.generate_content(model="gemini-2.0-flash", contents="a")
    assert r.text == "echo: a"
    out = []
    async for c in await g.aio.models.generate_content_stream(model="gemini-2.0-flash", contents="as"):
        out.append(c.text or "")
    assert "".join(out) == "echo: as"


asyncio.run(aio())
print("genai async ok")

oc_gem = openai.OpenAI(api_key=key, base_url=f"{base}/proxy/gm/v1beta/openai/", max_retries=0)
r = oc_gem.chat.completions.create(model="gemini-2.0-flash", messages=[{"role": "user", "content": "g"}])
assert r.choices[0].message.content == "echo: g"
print("gemini openai-compatible ok")
print("ALL OK")
