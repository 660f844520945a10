# records_get: reads the records index through the shared PostgreSQL helpers.
records_get_LIB := store dbconn rpc
