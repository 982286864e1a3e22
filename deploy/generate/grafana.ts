// A compact description of gpulse's dashboards, turned into Grafana JSON with Grafana's own
// Foundation SDK builders (layout, defaults and schema are theirs). The compact form keeps every
// panel one object: title, what it answers, its queries and its unit.
import {
  DashboardBuilder,
  DashboardCursorSync,
  DatasourceVariableBuilder,
  QueryVariableBuilder,
  RowBuilder,
  VariableRefresh,
  VariableSort,
  type Dashboard,
} from '@grafana/grafana-foundation-sdk/dashboard';
import {
  ReduceDataOptionsBuilder,
  StackingConfigBuilder,
  StackingMode,
} from '@grafana/grafana-foundation-sdk/common';
import { DataqueryBuilder, PromQueryFormat } from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as statetimeline from '@grafana/grafana-foundation-sdk/statetimeline';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

/** Every panel and query reads the datasource the user picks in the `datasource` variable. */
export const DATASOURCE = { type: 'prometheus', uid: '${datasource}' } as const;

/** One PromQL query of a panel. */
export interface QuerySpec {
  readonly expr: string;
  readonly legend?: string;
  /** Table panels read one instant value per series. */
  readonly instant?: boolean;
}

/** One panel. */
export interface PanelSpec {
  readonly title: string;
  /** The question the panel answers (shown as the panel's description). */
  readonly description: string;
  readonly kind: 'timeseries' | 'stat' | 'table' | 'state';
  readonly queries: readonly QuerySpec[];
  /** Grafana unit id: percentunit, bytes, watt, celsius, hertz, s, short, dateTimeFromNow ... */
  readonly unit?: string;
  readonly min?: number;
  readonly max?: number;
  /** Width in grid columns (24 per row); default 8 (12 for tables). */
  readonly width?: number;
  readonly height?: number;
  readonly stack?: boolean;
}

/** A row groups the panels of one concern. */
export interface RowSpec {
  readonly title: string;
  readonly panels: readonly PanelSpec[];
}

/** A dashboard template variable filled from label values. */
export interface VariableSpec {
  readonly name: string;
  readonly label: string;
  /** `label_values(metric{...}, label)`. */
  readonly query: string;
  readonly multi?: boolean;
}

/** One dashboard. */
export interface DashboardSpec {
  readonly uid: string;
  /** File name under deploy/grafana/dashboards/. */
  readonly file: string;
  readonly title: string;
  readonly description: string;
  readonly variables: readonly VariableSpec[];
  readonly rows: readonly RowSpec[];
}

function query(q: QuerySpec, i: number): DataqueryBuilder {
  const b = new DataqueryBuilder()
    .datasource(DATASOURCE)
    .expr(q.expr)
    .refId(String.fromCharCode(65 + i))
    .legendFormat(q.legend ?? '__auto');
  if (q.instant) b.instant().format(PromQueryFormat.Table);
  else b.range();
  return b;
}

function panel(p: PanelSpec) {
  const common = <
    T extends {
      title(t: string): T;
      description(d: string): T;
      datasource(d: typeof DATASOURCE): T;
      span(w: number): T;
      height(h: number): T;
      unit(u: string): T;
      min(n: number): T;
      max(n: number): T;
      withTarget(t: DataqueryBuilder): T;
    },
  >(
    b: T,
    defaultWidth: number,
    defaultHeight: number,
  ): T => {
    b.title(p.title)
      .description(p.description)
      .datasource(DATASOURCE)
      .span(p.width ?? defaultWidth)
      .height(p.height ?? defaultHeight);
    if (p.unit) b.unit(p.unit);
    if (p.min !== undefined) b.min(p.min);
    if (p.max !== undefined) b.max(p.max);
    p.queries.forEach((q, i) => b.withTarget(query(q, i)));
    return b;
  };
  switch (p.kind) {
    case 'timeseries': {
      const b = common(new timeseries.PanelBuilder(), 8, 8).fillOpacity(p.stack ? 30 : 10);
      if (p.stack) b.stacking(new StackingConfigBuilder().mode(StackingMode.Normal).group('A'));
      return b;
    }
    case 'stat':
      return common(new stat.PanelBuilder(), 4, 4).reduceOptions(
        new ReduceDataOptionsBuilder().calcs(['lastNotNull']),
      );
    case 'table':
      return common(new table.PanelBuilder(), 12, 8);
    case 'state':
      return common(new statetimeline.PanelBuilder(), 12, 8).mergeValues(true);
  }
}

/** Builds the Grafana dashboard JSON of a spec. */
export function buildDashboard(spec: DashboardSpec): Dashboard {
  const b = new DashboardBuilder(spec.title)
    .uid(spec.uid)
    .description(spec.description)
    .tags(['gpulse', 'gpu'])
    .editable()
    .tooltip(DashboardCursorSync.Crosshair)
    .refresh('30s')
    .time({ from: 'now-3h', to: 'now' })
    .timezone('browser')
    .withVariable(
      new DatasourceVariableBuilder('datasource').label('Data source').type('prometheus'),
    );
  for (const v of spec.variables) {
    b.withVariable(
      new QueryVariableBuilder(v.name)
        .label(v.label)
        .datasource(DATASOURCE)
        .query(v.query)
        .definition(v.query)
        .refresh(VariableRefresh.OnTimeRangeChanged)
        .sort(VariableSort.NaturalAsc)
        .multi(v.multi ?? true)
        .includeAll(true)
        .allValue('.*'),
    );
  }
  for (const row of spec.rows) {
    b.withRow(new RowBuilder(row.title));
    for (const p of row.panels) b.withPanel(panel(p));
  }
  return b.build();
}
