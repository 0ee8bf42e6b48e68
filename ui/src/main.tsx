// Entry point of the dashboard bundle (esbuild: dist/ui/app.js and app.css).

import 'uplot/dist/uPlot.min.css';
import './style.css';
import { render } from 'preact';
import { App } from './app.js';

render(<App />, document.getElementById('app')!);
