"""``algorithm=auto``: an Autopilot-style search inside one training job.

The job: explore the data (:mod:`.explore`), score a portfolio of candidates — preprocessing
variants crossed with model families — by cross-validation or on the validation channel under a
time budget (:mod:`.search`), blend the best with greedy ensemble selection (:mod:`.blend`),
refit, and leave a leaderboard, an exploration summary and a report in output/data.  Every
candidate is a pipeline built from byoc's own encoder and algorithm registry, so the result is
served by the same server as any other model.
"""
