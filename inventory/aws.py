"""A real AWS account: `pyinfra inventory/aws.py deploy.py`.

Needs SHOPSTACK_AWS_ACCOUNT_ID (the account, stated explicitly: the deploy refuses credentials of any
other), AWS_REGION and credentials by the standard AWS means. Sizes and other settings come from
$SHOPSTACK_SETTINGS (TOML) or `--data key=value`.
"""

from infra.stages import TargetError
from infra.stages.aws import aws_account

try:
    hosts = [("@shopstack/aws", aws_account())]
except TargetError as err:
    raise SystemExit(f"inventory/aws.py: {err}") from None
