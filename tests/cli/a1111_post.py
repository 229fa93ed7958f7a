"""POST /sdapi/v1/txt2img to a `hsd edge --http` daemon on loopback and
print "STATUS DETAIL": DETAIL is the first image's cloud k and fallback
(the image goes to OUT.png) or, for an error, A1111's detail text.

  a1111_post.py PORT OUT.png BODY_JSON
"""
import base64
import json
import sys
import urllib.error
import urllib.request


def main(port, out, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/sdapi/v1/txt2img", body.encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            j = json.load(r)
            with open(out, "wb") as f:
                f.write(base64.b64decode(j["images"][0]))
            h = json.loads(j["info"])["hybrid"][0]
            print(r.status, f"cloud_k={h['cloud_k']} fallback={h['fallback']}")
    except urllib.error.HTTPError as e:
        print(e.code, json.load(e).get("detail"))


if __name__ == "__main__":
    main(*sys.argv[1:4])
