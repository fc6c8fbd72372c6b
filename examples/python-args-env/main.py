import os
import sys

greeting = os.environ.get("GREETING", "hello")
for name in sys.argv[1:]:
    print(f"{greeting}, {name}")
