# idempotency: the Idempotency-Key claims, in PostgreSQL through the shared helpers.
idempotency_LIB := store dbconn rpc
