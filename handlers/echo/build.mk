# echo: jansson and the rpc skeleton of handlers/lib/ (no database).
echo_LIB := rpc
