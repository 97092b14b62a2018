/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* parse: shared between parse.bpf.c and its plugin. parse fills struct xdpp_packet (contract.h). */
#ifndef XDPP_STAGE_PARSE_H
#define XDPP_STAGE_PARSE_H

/* Load-time constant (.rodata) of parse.bpf.c, set by the plugin from `malformed = "pass"|"drop"`:
 *   const volatile __u32 parse_malformed_verdict;   XDP_PASS (default) or XDP_DROP
 * A malformed packet ends the chain at parse with that verdict. */
#define PARSE_MALFORMED_VERDICT_NAME "parse_malformed_verdict"

#endif
