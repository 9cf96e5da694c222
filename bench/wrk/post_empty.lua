-- POST with an empty JSON body (bench/http.sh write path)
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
