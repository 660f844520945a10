# timer_service: libcurl for the webhooks, PostgreSQL for the timers table.
timer_service_PKGS := jansson libcurl
timer_service_LIB := store rpc
