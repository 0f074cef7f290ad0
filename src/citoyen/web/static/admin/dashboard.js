// Draws the dashboard's charts from the page's JSON data block (no inline script: the admin's
// Content-Security-Policy is default-src 'self'). The same numbers are in the tables under each
// chart, so nothing is lost when this file or Chart.js does not load.
(function () {
  "use strict";

  function start() {
    var block = document.getElementById("dashboard-data");
    if (!block || typeof window.Chart === "undefined") {
      return;
    }
    var data = JSON.parse(block.textContent);
    var green = "#15803d";
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } }
    };

    function bar(id, chart, horizontal) {
      var canvas = document.getElementById(id);
      if (!canvas) {
        return;
      }
      var opts = JSON.parse(JSON.stringify(options));
      if (horizontal) {
        opts.indexAxis = "y";
        opts.scales = {
          x: { beginAtZero: true, ticks: { precision: 0 } },
          // Long category names are cut with an ellipsis; the table below has them whole.
          y: { ticks: { callback: function (value) {
            var text = String(this.getLabelForValue(value));
            return text.length > 28 ? text.slice(0, 27) + "…" : text;
          } } }
        };
      }
      new window.Chart(canvas, {
        type: "bar",
        data: {
          labels: chart.labels,
          datasets: [{ label: data.titles.reports, data: chart.values, backgroundColor: green }]
        },
        options: opts
      });
    }

    bar("chart-category", data.category, true);
    bar("chart-region", data.region, true);
    bar("chart-week", data.week, false);

    var sla = document.getElementById("chart-sla");
    if (sla) {
      var slaOptions = JSON.parse(JSON.stringify(options));
      slaOptions.scales = { y: { min: 0, max: 100 } };
      new window.Chart(sla, {
        type: "line",
        data: {
          labels: data.sla.labels,
          datasets: [{ label: data.titles.sla, data: data.sla.values, borderColor: green,
                       backgroundColor: green, spanGaps: true }]
        },
        options: slaOptions
      });
    }

    var safety = document.getElementById("chart-safety");
    if (safety && data.safety.length) {
      // One line per survey and region, over the periods seen.
      var periods = [];
      var lines = {};
      data.safety.forEach(function (p) {
        if (periods.indexOf(p.period) < 0) {
          periods.push(p.period);
        }
        var name = p.survey + " · " + p.area;
        lines[name] = lines[name] || {};
        lines[name][p.period] = p.share;
      });
      periods.sort();
      var datasets = Object.keys(lines).map(function (name) {
        return {
          label: name,
          data: periods.map(function (period) {
            var v = lines[name][period];
            return v === undefined ? null : v;
          }),
          spanGaps: true
        };
      });
      var safetyOptions = JSON.parse(JSON.stringify(options));
      safetyOptions.plugins.legend.display = true;
      safetyOptions.scales = { y: { min: 0, max: 100 } };
      new window.Chart(safety, {
        type: "line",
        data: { labels: periods, datasets: datasets },
        options: safetyOptions
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
