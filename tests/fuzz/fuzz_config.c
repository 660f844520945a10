// fuzz-sources: common/*.c
/* The endpoints.yaml loader on arbitrary bytes: it must report problems,
 * never crash, leak or read out of bounds. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[] = "/tmp/fpesa-fuzz-config-XXXXXX";
    int fd = mkstemp(path);
    FILE *devnull;
    struct cfg *cfg;

    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    devnull = fopen("/dev/null", "w");
    cfg = cfg_load(path, devnull);
    cfg_free(cfg);
    if (devnull)
        fclose(devnull);
    unlink(path);
    return 0;
}
