#include "lethe/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <mutex>
#include <optional>
#include <cmath>
#include <fstream>
#include <sstream>

#include "core/json_util.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/log.h"
#include "lethe/core/progress.h"
#include "lethe/core/range.h"
#include "lethe/core/runtime.h"
#include "lethe/data/dataset.h"
#include "lethe/io/checkpoint.h"

namespace lethe::train {
namespace fs = std::filesystem;

namespace {

constexpr int kCheckpointFormat = 1;

// Epoch e visits the objective's size() every-epoch examples and its epoch_extras(e).
struct Plan {
  std::int64_t total_steps = 0, warmup = 0;
  std::int64_t batch_size = 1;
  const Objective* objective = nullptr;
  std::vector<std::size_t> members(std::int64_t epoch) const {
    std::vector<std::size_t> m(objective->size());
    for (std::size_t i = 0; i < m.size(); ++i) m[i] = i;
    const auto extra = objective->epoch_extras(static_cast<std::uint64_t>(epoch));
    m.insert(m.end(), extra.begin(), extra.end());
    return m;
  }
  std::int64_t micro_batches(std::size_t examples) const {
    return (static_cast<std::int64_t>(examples) + batch_size - 1) / batch_size;
  }
};

Plan make_plan(const TrainerConfig& c, const Objective& obj) {
  LETHE_CHECK(obj.size() > 0, "training: the dataset is empty");
  LETHE_CHECK(c.batch_size > 0 && c.grad_accum > 0, "training: batch_size and grad_accum must be positive");
  LETHE_CHECK(c.epochs > 0 || c.max_steps > 0, "training: epochs or max_steps must be positive");
  Plan p;
  p.batch_size = c.batch_size;
  p.objective = &obj;
  if (c.max_steps > 0) {
    p.total_steps = c.max_steps;
  } else {
    for (std::int64_t e = 0; e < c.epochs; ++e) {
      p.total_steps += (p.micro_batches(p.members(e).size()) + c.grad_accum - 1) / c.grad_accum;
    }
  }
  p.warmup = c.warmup_steps > 0 ? c.warmup_steps
                                : static_cast<std::int64_t>(std::ceil(c.warmup_ratio * static_cast<double>(p.total_steps)));
  return p;
}

struct Position {
  std::int64_t step = 0, epoch = 0, micro = 0;
  double initial_retain = NAN;
  std::int64_t tokens = -1;  // cumulative label tokens; -1: not in an older checkpoint
  double elapsed = -1;       // cumulative training seconds; -1: likewise
};

fs::path checkpoint_dir(const fs::path& run, std::int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step-%08lld", static_cast<long long>(step));
  return run / "checkpoints" / name;
}

// Every generator of the run: the caller's and libtorch's default CPU generator.
NamedGenerators all_generators(const NamedGenerators& given) {
  static at::Generator default_cpu = at::detail::getDefaultCPUGenerator();
  NamedGenerators all = given;
  all.emplace_back("torch.default_cpu", &default_cpu);
  return all;
}

void save_checkpoint(const TrainerConfig& c, const std::vector<std::pair<std::string, at::Tensor>>& params,
                     const AdamW& opt, const Position& pos, const NamedGenerators& generators) {
  const fs::path final_dir = checkpoint_dir(c.run_dir, pos.step);
  const fs::path tmp = final_dir.string() + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  io::save_safetensors(tmp / "trainable.safetensors", params);
  io::save_safetensors(tmp / "optimizer.safetensors", opt.state());
  std::vector<std::pair<std::string, at::Tensor>> rng;
  for (const auto& [name, g] : all_generators(generators)) {
    std::lock_guard<std::mutex> lock(g->mutex());
    rng.emplace_back(name, g->get_state());
  }
  io::save_safetensors(tmp / "rng.safetensors", rng);
  Json state = {{"format_version", kCheckpointFormat}, {"step", pos.step}, {"epoch", pos.epoch},
                {"micro", pos.micro}, {"fingerprint", c.fingerprint},
                {"initial_retain", std::isfinite(pos.initial_retain) ? Json(pos.initial_retain) : Json(nullptr)},
                {"tokens", pos.tokens}, {"elapsed_s", pos.elapsed}, {"threads", threads()}};
  write_file_atomic(tmp / "state.json", state.dump(2) + "\n");
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  // Keep the newest `keep_checkpoints`.
  std::vector<fs::path> all;
  for (const auto& e : fs::directory_iterator(c.run_dir / "checkpoints")) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("step-", 0) == 0 && n.find(".tmp") == std::string::npos) all.push_back(e.path());
  }
  std::sort(all.begin(), all.end());
  for (std::size_t i = 0; i + static_cast<std::size_t>(std::max<std::int64_t>(c.keep_checkpoints, 1)) < all.size(); ++i) {
    fs::remove_all(all[i]);
  }
}

// The complete checkpoints, newest first.
std::vector<fs::path> complete_checkpoints(const fs::path& run) {
  const fs::path dir = run / "checkpoints";
  std::vector<fs::path> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("step-", 0) != 0 || n.find(".tmp") != std::string::npos) continue;
    if (!fs::exists(e.path() / "state.json")) continue;
    out.push_back(e.path());
  }
  std::sort(out.rbegin(), out.rend());
  return out;
}

// Leftovers of a checkpoint write that was killed ("step-N.tmp").
void remove_partial_checkpoints(const fs::path& run) {
  const fs::path dir = run / "checkpoints";
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0) fs::remove_all(e.path(), ec);
  }
}

// A checkpoint that belongs to another configuration or thread count: an error to report, not
// damage to fall back from.
struct Mismatch : Error {
  using Error::Error;
};

Position load_checkpoint(const fs::path& dir, const TrainerConfig& c,
                         const std::vector<std::pair<std::string, at::Tensor>>& params, AdamW& opt,
                         const NamedGenerators& generators) {
  Json state = parse_json_file(dir / "state.json");
  const std::string where = (dir / "state.json").string();
  if (json_required<int>(state, "format_version", where) != kCheckpointFormat) {
    throw Mismatch(detail::concat(where, ": checkpoint format ", state["format_version"].dump(),
                                  " is not supported (expected ", kCheckpointFormat, ")"));
  }
  if (json_required<std::string>(state, "fingerprint", where) != c.fingerprint) {
    throw Mismatch(detail::concat(where,
                                  ": this checkpoint belongs to a run with a different configuration or "
                                  "inputs; use a new output directory or set train.resume=false to start over"));
  }
  // Results depend on the thread count (libtorch's reductions are split per thread), so a
  // resumed run continues with the count it started with.
  if (state.contains("threads") && state["threads"].is_number_integer() && state["threads"].get<int>() != threads()) {
    throw Mismatch(detail::concat(where, ": the run started with ", state["threads"].get<int>(),
                                  " threads and would continue with ", threads(),
                                  ", which changes its results; resume with --threads ", state["threads"].get<int>(),
                                  " or set train.resume=false to start over"));
  }
  io::SafetensorsFile trainable(dir / "trainable.safetensors");
  for (auto& [name, p] : params) {
    at::Tensor dst = p;
    trainable.read_into(name, dst);
  }
  io::SafetensorsFile ost(dir / "optimizer.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> st;
  for (const auto& t : ost.header().tensors) st.emplace_back(t.name, ost.load(t.name));
  opt.load_state(st);
  // Checkpoints older than rng.safetensors resume with freshly seeded generators.
  if (fs::exists(dir / "rng.safetensors")) {
    io::SafetensorsFile rng(dir / "rng.safetensors");
    for (const auto& [name, g] : all_generators(generators)) {
      LETHE_CHECK(rng.header().find(name) != nullptr, (dir / "rng.safetensors").string(), ": no state for generator '",
                  name, "'");
      std::lock_guard<std::mutex> lock(g->mutex());
      g->set_state(rng.load(name));
    }
  }
  Position pos;
  pos.step = json_required<std::int64_t>(state, "step", where);
  pos.epoch = json_required<std::int64_t>(state, "epoch", where);
  pos.micro = json_required<std::int64_t>(state, "micro", where);
  if (state.contains("initial_retain") && state["initial_retain"].is_number()) {
    pos.initial_retain = state["initial_retain"].get<double>();
  }
  if (state.contains("tokens") && state["tokens"].is_number_integer()) pos.tokens = state["tokens"].get<std::int64_t>();
  if (state.contains("elapsed_s") && state["elapsed_s"].is_number()) pos.elapsed = state["elapsed_s"].get<double>();
  return pos;
}

// The newest checkpoint that loads; a damaged one is skipped with a warning naming it.
std::optional<Position> resume_position(const TrainerConfig& c,
                                        const std::vector<std::pair<std::string, at::Tensor>>& params, AdamW& opt,
                                        std::int64_t total_steps, const NamedGenerators& generators) {
  const auto all = complete_checkpoints(c.run_dir);
  for (const auto& ck : all) {
    try {
      Position pos = load_checkpoint(ck, c, params, opt, generators);
      log_info("resuming from ", ck.string(), " (step ", pos.step, " of ", total_steps, ")");
      return pos;
    } catch (const Mismatch&) {
      throw;
    } catch (const std::exception& e) {
      log_warn("checkpoint ", ck.string(), " is damaged and was skipped (", e.what(),
               "); trying the one before it");
    }
  }
  // The damaged ones may have filled some parameters already: never train on from there.
  LETHE_CHECK(all.empty(), "none of the ", all.size(), " checkpoints in ", (c.run_dir / "checkpoints").string(),
              " could be read; set train.resume=false to start the run over");
  return std::nullopt;
}

// Keeps train_log.jsonl lines up to `step` (after a resume) and appends new ones atomically.
class TrainLog {
 public:
  TrainLog(const fs::path& path, std::int64_t keep_through) : path_(path) {
    if (!fs::exists(path)) return;
    std::istringstream in(read_file(path));
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      try {
        Json j = Json::parse(line);
        if (j.value("step", std::int64_t{0}) <= keep_through) {
          lines_ += line + "\n";
          last_ = std::move(j);
        }
      } catch (const Json::exception&) {
        // A torn last line from an interrupted run is dropped.
      }
    }
    write_file_atomic(path_, lines_);
  }
  void append(const Json& j) {
    std::ofstream out(path_, std::ios::app);
    out << j.dump() << "\n";
    LETHE_CHECK(out.good(), "cannot append to ", path_.string());
  }
  const Json& last() const { return last_; }  // the newest line kept (null when none)

 private:
  fs::path path_;
  std::string lines_;
  Json last_;
};

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

}  // namespace

void CollapseGuard::validate() const {
  LETHE_CHECK(action == "warn" || action == "stop" || action == "off", "'guard.action' must be warn, stop or off, got '",
              action, "'");
  check_range("guard.retain_loss_factor", retain_loss_factor, Range::at_least(1));
  check_range("guard.retain_loss_floor", retain_loss_floor, Range::non_negative());
  check_range("guard.repetition_every", static_cast<double>(repetition_every), Range::count());
  check_range("guard.repetition_threshold", repetition_threshold, Range::unit());
}

std::int64_t planned_steps(const TrainerConfig& c, const Objective& objective) {
  return make_plan(c, objective).total_steps;
}

TrainResult train(const std::vector<std::pair<std::string, at::Tensor>>& params, Objective& obj,
                  const TrainerConfig& c, const EvalCallback& eval, const Probe& probe,
                  const NamedGenerators& generators, const StopCheck& stop) {
  LETHE_CHECK(!c.run_dir.empty(), "training needs a run directory");
  c.guard.validate();
  fs::create_directories(c.run_dir);
  const Plan plan = make_plan(c, obj);
  for (const auto& [_, p] : params) p.set_requires_grad(true);
  AdamW opt(params, c.optimizer);
  Schedule sched{c.schedule, plan.warmup, c.optimizer.lr, plan.total_steps};
  (void)sched.at(0);  // validates the schedule name

  TrainResult result;
  Position pos;
  remove_partial_checkpoints(c.run_dir);
  if (c.resume) {
    if (auto p = resume_position(c, params, opt, plan.total_steps, generators)) {
      pos = *p;
      result.resumed_from = pos.step;
    }
  }
  if (!c.resume || result.resumed_from == 0) {
    fs::remove_all(c.run_dir / "checkpoints");
  }
  TrainLog log(c.run_dir / "train_log.jsonl", pos.step);
  // Counters continue across a resume; checkpoints older than this field take them from the log.
  if (result.resumed_from > 0 && (pos.tokens < 0 || pos.elapsed < 0)) {
    const Json& last = log.last();
    const bool logged = last.is_object() && last.value("step", std::int64_t{-1}) == pos.step;
    LETHE_CHECK(logged || pos.tokens >= 0, "resuming at step ", pos.step, ": neither the checkpoint nor ",
                (c.run_dir / "train_log.jsonl").string(), " records the tokens trained so far");
    if (pos.tokens < 0) pos.tokens = last.value("tokens", std::int64_t{0});
    if (pos.elapsed < 0) pos.elapsed = logged ? last.value("elapsed_s", 0.0) : 0.0;
  }
  if (pos.tokens < 0) pos.tokens = 0;
  if (pos.elapsed < 0) pos.elapsed = 0;

  Progress bar(c.run_dir.filename().string().empty() ? "train" : "train", plan.total_steps, c.progress);
  bar.update(pos.step);
  const auto t0 = std::chrono::steady_clock::now();
  const double elapsed_before = pos.elapsed;
  std::vector<std::size_t> order;  // the epoch's examples in the order it visits them
  std::int64_t order_epoch = -1, micro_per_epoch = 0;
  bool warned = false;
  while (pos.step < plan.total_steps && !result.stopped) {
    {
      if (order_epoch != pos.epoch) {
        const auto members = plan.members(pos.epoch);
        order = data::epoch_order(members.size(), c.seed, static_cast<std::uint64_t>(pos.epoch));
        for (auto& o : order) o = members[o];
        order_epoch = pos.epoch;
        micro_per_epoch = plan.micro_batches(order.size());
      }
      const std::size_t n = order.size();
      const std::int64_t window = std::min(c.grad_accum, micro_per_epoch - pos.micro);
      opt.zero_grad();
      std::map<std::string, double> terms;
      std::optional<double> guarded;  // the objective's guarded term, averaged like `terms`
      double total = 0;
      for (std::int64_t k = 0; k < window; ++k) {
        const std::int64_t micro = pos.micro + k;
        std::vector<std::size_t> idx, positions;
        for (std::int64_t j = micro * c.batch_size;
             j < std::min<std::int64_t>((micro + 1) * c.batch_size, static_cast<std::int64_t>(n)); ++j) {
          idx.push_back(order[static_cast<std::size_t>(j)]);
          positions.push_back(static_cast<std::size_t>(j));
        }
        LossTerms lt = obj.loss(idx, positions, static_cast<std::uint64_t>(pos.epoch));
        const double value = lt.total.item<double>();
        LETHE_CHECK(std::isfinite(value), "training: the loss became ", value, " at step ", pos.step + 1,
                    " (lower the learning rate, or check the data)");
        (lt.total / static_cast<double>(window)).backward();
        total += value / static_cast<double>(window);
        for (const auto& [name, t] : lt.terms) terms[name] += t.item<double>() / static_cast<double>(window);
        if (lt.guarded.defined()) guarded = guarded.value_or(0.0) + lt.guarded.item<double>() / static_cast<double>(window);
        pos.tokens += obj.tokens(idx);
      }
      const double grad_norm = clip_grad_norm(params, c.max_grad_norm);
      const double lr = sched.at(pos.step);
      opt.step(lr);
      opt.zero_grad();
      ++pos.step;
      pos.micro += window;
      if (pos.micro >= micro_per_epoch) {
        ++pos.epoch;
        pos.micro = 0;
      }

      pos.elapsed = elapsed_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      Json entry = {{"step", pos.step}, {"epoch", pos.epoch}, {"lr", lr}, {"loss", total},
                    {"grad_norm", grad_norm}, {"tokens", pos.tokens}, {"elapsed_s", pos.elapsed}};
      for (const auto& [k, v] : terms) entry["terms"][k] = v;

      // Collapse guard.
      std::string alarm;
      if (c.guard.action != "off") {
        if (guarded) {
          if (!std::isfinite(pos.initial_retain)) pos.initial_retain = *guarded;
          if (pos.initial_retain > 0 && *guarded > c.guard.retain_loss_factor * pos.initial_retain &&
              *guarded > c.guard.retain_loss_floor) {
            alarm = "retain loss " + fmt(*guarded) + " exceeds " + fmt(c.guard.retain_loss_factor) +
                    "x its initial " + fmt(pos.initial_retain);
          }
        }
        if (alarm.empty() && probe && c.guard.repetition_every > 0 && pos.step % c.guard.repetition_every == 0) {
          const double rep = probe();
          entry["repetition"] = rep;
          if (rep > c.guard.repetition_threshold) {
            alarm = "generations degenerate into repetition (" + fmt(rep) + " of 3-grams repeated, threshold " +
                    fmt(c.guard.repetition_threshold) + ")";
          }
        }
      }
      if (eval && c.eval_every > 0 && (pos.step % c.eval_every == 0 || pos.step == plan.total_steps)) {
        for (const auto& [k, v] : eval(pos.step)) entry["eval"][k] = v;
      }
      if (stop && c.stop_every > 0 && pos.step % c.stop_every == 0 && pos.step < plan.total_steps) {
        const StopDecision d = stop(pos.step);
        for (const auto& [k, v] : d.values) entry["stop_check"][k] = v;
        if (!d.reason.empty()) {
          entry["stop"] = d.reason;
          result.stopped = true;
          result.stopped_by = "rule";
          result.stop_reason = d.reason;
          log_info("stop rule: ", d.reason, " at step ", pos.step, "; stopping");
        }
      }
      if (!alarm.empty()) {
        entry["guard"] = alarm;
        if (c.guard.action == "stop") {
          result.stopped = true;
          result.stopped_by = "guard";
          result.stop_reason = alarm;
          log_warn("collapse guard: ", alarm, " at step ", pos.step, "; stopping");
        } else if (!warned) {  // once: every alarm is in train_log.jsonl
          log_warn("collapse guard: ", alarm, " at step ", pos.step,
                   " (further alarms are only recorded in train_log.jsonl)");
          warned = true;
        }
      }
      log.append(entry);
      result.last_terms = terms;
      result.last_terms["loss"] = total;
      bar.update(pos.step, "loss " + fmt(total));
      if (c.checkpoint_every > 0 && (pos.step % c.checkpoint_every == 0 || pos.step == plan.total_steps)) {
        save_checkpoint(c, params, opt, pos, generators);
      }
    }
  }
  bar.finish();
  for (const auto& [_, p] : params) p.set_requires_grad(false);
  result.steps = pos.step;
  return result;
}

}  // namespace lethe::train
