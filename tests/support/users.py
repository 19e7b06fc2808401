"""Another user, for the tests where one is the attacker: uid 65534 (nobody), run through setpriv."""

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
