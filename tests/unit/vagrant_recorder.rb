# Loads a Vagrantfile with a recording stand-in for Vagrant's configuration API and prints, as
# JSON, what it defined: machine names, private-network addresses and provisioners.
require "json"

class Recorder
  Provisioner = Struct.new(:playbook, :config_file, :inventory_path, :limit, :compatibility_mode)
  Provider = Struct.new(:memory, :cpus)

  def initialize(calls, name = nil)
    @calls = calls
    @name = name
  end

  def define(name)
    @calls[:machines][name] = {}
    yield Recorder.new(@calls, name)
  end

  def network(_kind, opts = {})
    @calls[:machines][@name][:ip] = opts[:ip]
  end

  def provision(_kind)
    r = Provisioner.new
    yield r
    @calls[:provisioners] << {
      machine: @name, inventory: r.inventory_path, limit: r.limit, playbook: r.playbook
    }
  end

  def provider(*)
    yield Provider.new
  end

  def method_missing(*)
    self
  end

  def respond_to_missing?(*)
    true
  end
end

module Vagrant
  def self.configure(_version)
    calls = { machines: {}, provisioners: [] }
    yield Recorder.new(calls)
    puts JSON.generate(calls)
  end
end

load ARGV[0]
