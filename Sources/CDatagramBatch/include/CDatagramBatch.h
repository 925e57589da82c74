#ifndef SRVD_CDATAGRAMBATCH_H
#define SRVD_CDATAGRAMBATCH_H

// Swift's Glibc module is built without _GNU_SOURCE, so it has neither struct mmsghdr nor
// recvmmsg(2)/sendmmsg(2). This header includes no system header (one here would take
// <sys/socket.h>'s names away from Glibc's module); Swift declares the struct with the same
// layout and checks it against the sizes below.

// Blocks for the first datagram only, then takes what is already queued (MSG_WAITFORONE).
int srvd_recvmmsg(int fd, void *messages, unsigned int count);
int srvd_sendmmsg(int fd, void *messages, unsigned int count);

/// sizeof(struct mmsghdr) and offsetof(struct mmsghdr, msg_len).
unsigned long srvd_mmsghdr_size(void);
unsigned long srvd_mmsghdr_len_offset(void);

#endif
