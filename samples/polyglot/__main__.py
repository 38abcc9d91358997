"""``python -m samples.polyglot``: the sample end to end (see `samples.polyglot.demo`)."""

import asyncio
import logging

from .demo import main

logging.basicConfig(level=logging.WARNING)
asyncio.run(main())
