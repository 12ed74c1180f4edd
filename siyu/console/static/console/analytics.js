// Charts of the analytics page (console/analytics/overview.html), drawn with the vendored
// ECharts from the numbers the view put in #analytics-data.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }
  function chart(id, option) {
    var el = document.getElementById(id);
    if (!el || !window.echarts) return;
    var c = window.echarts.init(el);
    c.setOption(option);
    window.addEventListener("resize", function () { c.resize(); });
  }
  ready(function () {
    var node = document.getElementById("analytics-data");
    if (!node) return;
    var d = JSON.parse(node.textContent);
    var grid = { left: 48, right: 16, top: 16, bottom: 56, containLabel: true };
    chart("chart-stages", {
      grid: grid, tooltip: {},
      xAxis: { type: "category", data: d.stages.labels, axisLabel: { interval: 0, rotate: 30 } },
      yAxis: { type: "value" },
      series: [{ type: "bar", data: d.stages.values, itemStyle: { color: "#3b7ddd" } }]
    });
    if (d.rfm) {
      chart("chart-rfm", {
        tooltip: { formatter: function (p) { return p.name + ": " + p.value + " (¥" + p.data.revenue.toFixed(0) + ")"; } },
        series: [{ type: "treemap", roam: false, nodeClick: false, breadcrumb: { show: false }, data: d.rfm, label: { formatter: "{b}\n{c}" } }]
      });
    }
    if (d.lorenz) {
      chart("chart-lorenz", {
        grid: grid, tooltip: { trigger: "axis" },
        xAxis: { type: "value", min: 0, max: 1 }, yAxis: { type: "value", min: 0, max: 1 },
        series: [
          { type: "line", data: d.lorenz, smooth: false, areaStyle: { opacity: 0.15 }, name: "Lorenz" },
          { type: "line", data: [[0, 0], [1, 1]], lineStyle: { type: "dashed", color: "#999" }, symbol: "none", name: "=" }
        ]
      });
    }
    if (d.waterfall) {
      // Waterfall: an invisible base bar lifts each factor's bar to where the running total stands.
      var w = d.waterfall, base = [], value = [], running = w.start;
      base.push(0); value.push({ value: w.start, itemStyle: { color: "#8a94a6" } });
      w.values.forEach(function (v) {
        base.push(v >= 0 ? running : running + v);
        value.push({ value: Math.abs(v), itemStyle: { color: v >= 0 ? "#2e9d5b" : "#d1495b" }, signed: v });
        running += v;
      });
      base.push(0); value.push({ value: w.end, itemStyle: { color: "#8a94a6" } });
      chart("chart-waterfall", {
        grid: grid,
        tooltip: { trigger: "axis", formatter: function (ps) { var p = ps[1]; var v = p.data.signed !== undefined ? p.data.signed : p.data.value; return p.name + ": ¥" + v.toFixed(2); } },
        xAxis: { type: "category", data: [w.start_label].concat(w.labels, [w.end_label]), axisLabel: { interval: 0 } },
        yAxis: { type: "value" },
        series: [
          { type: "bar", stack: "w", data: base, itemStyle: { color: "transparent" }, emphasis: { disabled: true } },
          { type: "bar", stack: "w", data: value }
        ]
      });
    }
  });
})();
