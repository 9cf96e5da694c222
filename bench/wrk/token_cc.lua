-- client_credentials grant (bench/token.sh): POST to the token endpoint with
-- HTTP Basic client authentication. Environment: TOKEN_BASIC (base64 of
-- client_id:client_secret), TOKEN_SCOPE (default api:read).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. assert(os.getenv("TOKEN_BASIC"), "TOKEN_BASIC not set")
wrk.body = "grant_type=client_credentials&scope=" .. (os.getenv("TOKEN_SCOPE") or "api:read")
