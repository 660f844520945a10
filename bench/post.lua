-- wrk script: POST a small JSON object (the same body for every request).
wrk.method = "POST"
wrk.body = '{"text":"hello world","n":1}'
wrk.headers["Content-Type"] = "application/json"
