// Renderer entry: mounts the app. Everything it talks to goes through lib/api.ts.
import { mount } from 'svelte';
import App from './App.svelte';
import './app.css';

mount(App, { target: document.getElementById('app')! });
