#define _GNU_SOURCE
#include <stddef.h>
#include <sys/socket.h>
#include "CDatagramBatch.h"

int srvd_recvmmsg(int fd, void *messages, unsigned int count) {
    return recvmmsg(fd, (struct mmsghdr *)messages, count, MSG_WAITFORONE, NULL);
}

int srvd_sendmmsg(int fd, void *messages, unsigned int count) {
    return sendmmsg(fd, (struct mmsghdr *)messages, count, 0);
}

unsigned long srvd_mmsghdr_size(void) { return sizeof(struct mmsghdr); }

unsigned long srvd_mmsghdr_len_offset(void) { return offsetof(struct mmsghdr, msg_len); }
