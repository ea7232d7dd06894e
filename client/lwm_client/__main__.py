import sys

from lwm_client.cli import main

sys.exit(main())
