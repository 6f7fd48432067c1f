"""``python -m integrations.sandbox.meetup``: run the Meetup emulator in the foreground."""

from integrations.sandbox.meetup.app import main

main()
