#include <xdp_pipeline/stage.h>
char LICENSE[] SEC("license") = "GPL";
XDPP_STAGE(parse)(struct xdp_md *xdp, struct xdpp_packet *pkt) { return XDPP_CONTINUE; }
