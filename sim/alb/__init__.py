"""The local ALB: the AWS Load Balancer Controller's part (`controller.AlbController`, planning from
`model`, writing through `elbv2`) and the data plane (`python -m sim.alb`: `dataplane`, routing by the
emulator's rules in `routing`, its own health checks in `health`)."""
