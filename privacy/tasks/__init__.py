"""Fan-out: durable tasks that carry each request and consent change to every connected
system (``planning``), the scheduler's runner that claims and runs them (``runner``),
how a try's answer becomes the task's state (``outcomes``), and what officers do with
them (``service``)."""
