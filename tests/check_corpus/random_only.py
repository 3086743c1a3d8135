"""Nothing but random output: check cannot tell anything (inconclusive)."""

import os

print(os.urandom(8).hex())
