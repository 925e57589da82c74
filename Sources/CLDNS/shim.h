#ifndef SRVD_CLDNS_SHIM_H
#define SRVD_CLDNS_SHIM_H
#include <stdio.h>
#include <ldns/ldns.h>
#endif
