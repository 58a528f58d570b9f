# Reference values for tests/test_metrics.py and tests/test_stats.py.
#
# Run with R 4.2.2 and pROC 1.18.0 (Debian bookworm: apt-get install r-base-core r-cran-proc):
#     Rscript tests/data/proc_reference.R tests/data/asah.csv
# It writes the aSAH data set that ships with pROC (Turck et al. 2010, 113 patients with
# aneurysmal subarachnoid haemorrhage) to the CSV given as argument, and prints the values
# that the tests hold as literals. The tests never run R.
suppressMessages(library(pROC))
args <- commandArgs(trailingOnly = TRUE)
data(aSAH)
out <- data.frame(
  poor_outcome = as.integer(aSAH$outcome == "Poor"),
  s100b = aSAH$s100b,
  wfns = as.integer(as.character(aSAH$wfns)),
  ndka = aSAH$ndka
)
write.csv(out, args[1], row.names = FALSE, quote = FALSE)
p <- function(name, x) cat(sprintf("%s = %s\n", name, paste(sprintf("%.17g", x), collapse = ", ")))
cat(R.version.string, " pROC", as.character(packageVersion("pROC")), "\n")

curve <- function(score, response) roc(response, score, levels = c(0, 1), direction = "<", quiet = TRUE)
for (marker in c("s100b", "wfns", "ndka")) {
  r <- curve(out[[marker]], out$poor_outcome)
  p(paste0(marker, " auc"), as.numeric(auc(r)))
  p(paste0(marker, " var_delong"), var(r, method = "delong"))
  p(paste0(marker, " ci_delong"), as.numeric(ci.auc(r, method = "delong")))
  b <- coords(r, "best", best.method = "youden", ret = c("threshold", "sensitivity", "specificity"))
  p(paste0(marker, " youden threshold/sens/spec"), unlist(b[1, ]))
}
pairs <- list(c("s100b", "wfns"), c("s100b", "ndka"), c("wfns", "ndka"))
for (pr in pairs) {
  t <- roc.test(curve(out[[pr[1]]], out$poor_outcome), curve(out[[pr[2]]], out$poor_outcome),
                method = "delong", paired = TRUE)
  p(paste(pr[1], "vs", pr[2], "Z"), t$statistic)
  p(paste(pr[1], "vs", pr[2], "p"), t$p.value)
  p(paste(pr[1], "vs", pr[2], "conf.int"), t$conf.int)
  p(paste(pr[1], "vs", pr[2], "estimate"), t$estimate)
}

# Small hand-made cases.
y_small <- c(0, 0, 0, 0, 0, 0, 1, 1, 1, 1)
near_perfect <- c(0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 0.7, 0.8, 0.9, 0.95)
r <- curve(near_perfect, y_small)
p("near_perfect auc", as.numeric(auc(r)))
p("near_perfect var_delong", var(r, method = "delong"))
p("near_perfect ci_delong", as.numeric(ci.auc(r, method = "delong")))
perfect <- c(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
r <- suppressWarnings(curve(perfect, y_small))
p("perfect ci_delong", suppressWarnings(as.numeric(ci.auc(r, method = "delong"))))
y_one <- c(0, 0, 0, 0, 1)
r <- curve(c(0.1, 0.4, 0.35, 0.8, 0.5), y_one)
p("n_pos_1 auc", as.numeric(auc(r)))
p("n_pos_1 ci_delong", as.numeric(ci.auc(r, method = "delong")))

# Wilcoxon signed-rank test on paired differences (one-sample form), R's stats::wilcox.test.
# Values are multiples of 1/1000 without ties, and multiples of 1/8 (exact in binary) with ties.
d_exact <- c(21, -4, 33, 12, -9, 41, 17, 14, 28, 6) / 1000
w <- wilcox.test(d_exact, exact = TRUE)
p("wilcoxon exact V", w$statistic)
p("wilcoxon exact p", w$p.value)
d_ties <- c(2, 2, 2, 0, -2, 2, 2, 2, 2, 2, 0, -1) / 8
w <- suppressWarnings(wilcox.test(d_ties, exact = FALSE, correct = FALSE))
p("wilcoxon ties approx V", w$statistic)
p("wilcoxon ties approx p", w$p.value)
