# messages_get: reads the message store through the shared PostgreSQL helpers.
messages_get_LIB := store dbconn rpc
