"""What a run measured: accuracy matrices and their summaries
(:mod:`jcl.analysis.evaluate`), result files and plots
(:mod:`jcl.analysis.results`), and generator quality
(:mod:`jcl.analysis.quality`)."""
