"""The local ALB: the AWS Load Balancer Controller's part (`controller.AlbController`, planning from
`model`, writing through `elbv2`, and pod readiness gates in `readiness`: injected by an admission hook,
set from the data plane's measured target health) and the data plane (`python -m sim.alb`: `dataplane`,
routing by the emulator's rules and weights in `routing`, its own health checks in `health`, draining
deregistered targets for their target group's deregistration delay)."""
